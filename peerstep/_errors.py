"""Errors a user can act on. Each message is one line that says what went wrong and what to do."""

from __future__ import annotations


class PeerstepError(Exception):
    """Base class for every error peerstep raises on purpose."""


class ModelFetchError(PeerstepError):
    """The embedded model could not be downloaded, assembled or verified."""


class EngineError(PeerstepError):
    """A managed engine could not be installed, started or reached."""


class ModelServerError(PeerstepError):
    """The OpenAI-compatible server failed or refused a request after retries."""


class ModelNotFoundError(ModelServerError):
    """The server does not serve the requested model name."""


class InputError(PeerstepError):
    """The user's input (question, file, option) cannot be used as given."""
