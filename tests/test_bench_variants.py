"""bench/heldout.py's LeaP variants change exactly the knob they name, from the ``leap`` strategy as shipped: a row
labelled ``leap-clustered`` must not silently differ from ``leap`` in a second field."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from peerstep.agent import AgentConfig
from peerstep.registry import STRATEGIES
from peerstep.strategies import strategy_config

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_each_variant_is_leap_with_the_fields_it_names() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        heldout = importlib.import_module("heldout")
    finally:
        sys.path.remove(str(BENCH))
    heldout.register_variants()
    agent = AgentConfig()
    leap = strategy_config("leap", 4, agent)
    assert leap.sharing is not None
    base = leap.sharing.model_dump()
    for name, fields in heldout.LEAP_VARIANTS.items():
        assert name in STRATEGIES
        config = strategy_config(name, 4, agent)
        assert config.model_dump(exclude={"sharing"}) == leap.model_dump(exclude={"sharing"}), name
        assert config.sharing is not None
        changed = {k: v for k, v in config.sharing.model_dump().items() if base[k] != v}
        assert changed == {k: v for k, v in fields.items() if base[k] != v}, name
    # the variant that restores LeaP's own router differs from the shipped default in that field
    assert base["router"] != "dispersed" and strategy_config("leap-dispersed", 4, agent).sharing.router == "dispersed"  # type: ignore[union-attr]
