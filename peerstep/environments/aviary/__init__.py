"""Aviary compatibility, both ways: run peerstep on Aviary environments, serve peerstep's to Aviary users.

Aviary (PyPI ``fhaviary``, imported as ``aviary``) is FutureHouse's gym for language agents. Its
protocol is the one peerstep's environments copy (async ``reset``/``step``, OpenAI-shaped
messages), so the adapter is a faithful translation, not a re-interpretation:

* ``AviaryEnvironment`` wraps any ``aviary.core.Environment`` (an instance, or a factory that
  builds one at the first ``reset``) as a peerstep ``Environment``. Messages and tool schemas are
  converted losslessly (``to_openai_message`` / ``to_aviary_message``, ``AviaryTool`` /
  ``to_aviary_tool``); the Aviary environment still runs its own tools in its own ``step``.
* ``AviaryDataset`` puts an Aviary ``TaskDataset`` (local, or a ``TaskDatasetClient`` talking to
  a ``TaskDatasetServer``) behind peerstep's ``EnvironmentDataset``, so ``peerstep eval`` and the
  strategies run on it. ``aviary-calculator`` is registered: Aviary's own ``CalculatorEnv`` on a
  few arithmetic problems written here (``CALCULATOR_ROWS``).
* ``PeerstepAviaryEnv`` and ``PeerstepTaskDataset`` go the other way: any peerstep environment or
  dataset as an Aviary ``Environment`` / ``TaskDataset``, servable with Aviary's
  ``TaskDatasetServer`` so that Aviary and LDP agents can drive it. ``AviaryServer`` runs such a
  server in a background thread on 127.0.0.1 (Aviary's own default binds every interface).

Modules: ``_errors`` (the optional dependency and how failures are described), ``_convert``
(messages and tools), ``_environment`` (``AviaryEnvironment``; how it treats failures and replies
without tool calls), ``_dataset`` (``AviaryDataset``), ``_calculator`` (``aviary-calculator``),
``_server`` (peerstep in Aviary, and ``AviaryServer``; ``_http``, its routes) and ``_registry`` (Aviary's
``from_name``). Everything public is imported from here.

GSM8K and HotPotQA with network access. Aviary's ``TaskDataset.from_name("gsm8k", split="test")``
and ``TaskDataset.from_name("hotpotqa", split="dev")`` download their rows from the Hugging Face
hub when they are created, and HotPotQA's ``search`` tool calls live Wikipedia; neither can run
offline. Where the network is available::

    from aviary.core import TaskDataset
    from peerstep.environments.aviary import AviaryDataset
    dataset = AviaryDataset(TaskDataset.from_name("gsm8k", split="test"), name="gsm8k")
    # then e.g. peerstep.evals.run_eval(dataset, ...) or run_strategy("majority", dataset.factory(0), client)

A single HotPotQA task needs no download: ``HotPotQAEnv(question_id=None, question=..., correct_answer=...)``
builds from a local row (only its ``search`` tool needs the network).

Served, and by name. ``peerstep serve-env math`` serves a dataset over Aviary's HTTP protocol (``AviaryServer``);
``TaskDatasetClient(server_url="http://127.0.0.1:8041")`` connects. Importing this package adds every peerstep
dataset to Aviary's registry as ``peerstep-<name>`` (``_registry``), so ``TaskDataset.from_name("peerstep-math")``
works as ``from_name("gsm8k")`` does. What a served episode says (instructions, the reply to no tool calls, the
task id, 4xx statuses) is described in ``_server``.

Install: ``pip install 'peerstep[aviary]'`` (``fhaviary[server,gsm8k,hotpotqa]``: the server extra
brings FastAPI/uvicorn for ``TaskDatasetServer``; ``gsm8k`` brings the calculator environment).
Importing this package imports ``aviary`` when it is installed (to add to its registry; Aviary in turn imports
LiteLLM, a few seconds); without it the import still works and registers nothing. ``aviary-calculator`` is a lazy
entry of ``peerstep.registry``, so naming other datasets never imports this package.
"""

from __future__ import annotations

from typing import Any

from peerstep.environments.aviary import _calculator, _server
from peerstep.environments.aviary._calculator import (
    CALCULATOR_ROWS,
    AviaryCalculatorChecker,
    CalculatorRow,
    aviary_calculator,
    calculator_task_dataset,
)
from peerstep.environments.aviary._convert import AviaryTool, to_aviary_message, to_aviary_tool, to_openai_message
from peerstep.environments.aviary._dataset import AviaryDataset
from peerstep.environments.aviary._environment import ANSWER_TOOL_NAMES, AviaryEnvironment, aviary_gold
from peerstep.environments.aviary._errors import INSTALL_HINT, AviaryNotInstalledError, describe_exception
from peerstep.environments.aviary._errors import (
    _require_aviary as _require_aviary,  # tests clear its cache
)
from peerstep.environments.aviary._registry import AVIARY_PREFIX, aviary_dataset_name, register_aviary_datasets
from peerstep.environments.aviary._server import (
    DEFAULT_PORT,
    AviaryServer,
    EpisodeStateError,
    TaskNotFoundError,
    TaskRequestError,
    load_served_dataset,
    peerstep_aviary_env,
    peerstep_task_dataset,
    with_instructions,
)

# peerstep's datasets become Aviary's "peerstep-<name>" (TaskDataset.from_name); a no-op without fhaviary
register_aviary_datasets()


def __getattr__(name: str) -> Any:
    """``PeerstepAviaryEnv``, ``PeerstepTaskDataset`` and ``CalculatorTaskDataset`` subclass Aviary's classes,
    so they exist only once Aviary is imported; asking for one imports it (PEP 562)."""
    if name in _server._AviaryClasses._fields:
        return getattr(_server._classes(), name)
    if name == "CalculatorTaskDataset":
        return _calculator._calculator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ANSWER_TOOL_NAMES", "AVIARY_PREFIX", "CALCULATOR_ROWS", "DEFAULT_PORT", "INSTALL_HINT",
           "AviaryCalculatorChecker", "AviaryDataset", "AviaryEnvironment", "AviaryNotInstalledError", "AviaryServer",
           "AviaryTool", "CalculatorRow", "EpisodeStateError", "TaskNotFoundError", "TaskRequestError",
           "aviary_calculator", "aviary_dataset_name", "aviary_gold", "calculator_task_dataset", "describe_exception",
           "load_served_dataset", "peerstep_aviary_env", "peerstep_task_dataset", "register_aviary_datasets",
           "to_aviary_message", "to_aviary_tool", "to_openai_message", "with_instructions"]
