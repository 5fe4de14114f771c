"""Managed model engines behind one interface: llama.cpp (embedded default) and vLLM.

Engines are found by name in ``peerstep.registry.ENGINES`` (re-exported here): register a ``ManagedEngine`` class
there and ``make_engine`` (and ``peerstep serve --engine``) builds it by name.
"""

from peerstep.engines._base import EngineConfig, ManagedEngine, free_port, served_models
from peerstep.engines._llamacpp import LlamaCppEngine
from peerstep.engines._toolfront import ToolCallFront, text_request, tool_reply
from peerstep.engines._vllm import VllmEngine, default_vllm_python, has_gpu
from peerstep.registry import ENGINES


def make_engine(name: str, config: EngineConfig) -> ManagedEngine:
    """The engine registered as ``name`` in ``ENGINES``, built (not started) from ``config``."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")
    engine: ManagedEngine = ENGINES.get(name)(config)
    return engine


__all__ = ["ENGINES", "EngineConfig", "LlamaCppEngine", "ManagedEngine", "ToolCallFront", "VllmEngine",
           "default_vllm_python", "free_port", "has_gpu", "make_engine", "served_models", "text_request", "tool_reply"]
