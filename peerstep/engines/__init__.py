"""Managed model engines behind one interface: llama.cpp (embedded default) and vLLM."""

from peerstep.engines._base import EngineConfig, ManagedEngine, free_port, served_models
from peerstep.engines._llamacpp import LlamaCppEngine
from peerstep.engines._toolfront import ToolCallFront, text_request, tool_reply
from peerstep.engines._vllm import VllmEngine, default_vllm_python, has_gpu

ENGINES: dict[str, type[ManagedEngine]] = {"llamacpp": LlamaCppEngine, "vllm": VllmEngine}


def make_engine(name: str, config: EngineConfig) -> ManagedEngine:
    try:
        return ENGINES[name](config)
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}") from None


__all__ = ["ENGINES", "EngineConfig", "LlamaCppEngine", "ManagedEngine", "ToolCallFront", "VllmEngine",
           "default_vllm_python", "free_port", "has_gpu", "make_engine", "served_models", "text_request", "tool_reply"]
