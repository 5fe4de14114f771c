"""peerstep's datasets in Aviary's own registry: ``TaskDataset.from_name("peerstep-math", seed=1)``.

Aviary finds datasets by name in ``aviary.env.TASK_DATASET_REGISTRY`` (name -> ``(module, attribute)``, imported
when the name is used); it has no entry-point mechanism, so the entries are added when
``peerstep.environments.aviary`` is imported (``register_aviary_datasets``). Every peerstep dataset registered at
that moment gets the name ``peerstep-<name>`` (``AVIARY_PREFIX``), which cannot clash with Aviary's names
(``dummy``, ``gsm8k``, ``hotpotqa``); ``aviary-*`` datasets are Aviary's own environments already and are left out.
The entries are lazy: naming a dataset imports nothing until Aviary builds it, and ``from_name`` keyword
arguments go to ``peerstep.environments.load_dataset`` (``seed``, ``limit``, ``python``, ``path`` for
``peerstep-taskfile``...). A dataset registered later is added by calling ``register_aviary_datasets()`` again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peerstep.environments._dataset import dataset_names, load_dataset

if TYPE_CHECKING:
    import aviary.core as av

AVIARY_PREFIX = "peerstep-"


def aviary_dataset_name(name: str) -> str:
    """The name Aviary's ``TaskDataset.from_name`` knows peerstep dataset ``name`` by."""
    return AVIARY_PREFIX + name


def register_aviary_datasets(names: list[str] | None = None) -> list[str]:
    """Add peerstep's datasets (all registered ones, or ``names``) to Aviary's registry; the Aviary names added.

    Without fhaviary there is no registry to add to, and nothing is added (an empty list). An existing entry under
    the same name is left as it is.
    """
    try:
        from aviary.env import TASK_DATASET_REGISTRY
    except ImportError:  # Aviary is optional: with it absent, from_name cannot be called either
        return []
    added = []
    for name in names if names is not None else dataset_names():
        if name.startswith("aviary-"):
            continue
        key = aviary_dataset_name(name)
        TASK_DATASET_REGISTRY.setdefault(key, (__name__, key))
        added.append(key)
    return added


def aviary_task_dataset(name: str, **kwargs: Any) -> av.TaskDataset[Any]:
    """Peerstep dataset ``name`` (``load_dataset(name, **kwargs)``) as an Aviary ``TaskDataset``."""
    from peerstep.environments.aviary._server import peerstep_task_dataset

    return peerstep_task_dataset(load_dataset(name, **kwargs))


def __getattr__(attribute: str) -> Any:
    """Aviary resolves a registry entry with ``getattr(module, "peerstep-<name>")``: the builder of that dataset."""
    if attribute.startswith(AVIARY_PREFIX) and attribute[len(AVIARY_PREFIX):] in dataset_names():
        name = attribute[len(AVIARY_PREFIX):]

        def build(**kwargs: Any) -> av.TaskDataset[Any]:
            return aviary_task_dataset(name, **kwargs)

        build.__name__ = build.__qualname__ = attribute
        return build
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
