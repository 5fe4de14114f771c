"""``python -m peerstep.engines._llamacpp_server``: llama-cpp-python's OpenAI server with native tool calls.

The same server, arguments and settings as ``python -m llama_cpp.server``; its app is wrapped in
``ToolCallFront`` in the same process (no second hop), so a client that sends ``tools`` gets
``tool_calls`` back. Everything else reaches llama-cpp-python unchanged.
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

from peerstep.engines._toolfront import ToolCallFront


def main() -> None:
    parser = argparse.ArgumentParser(description="llama-cpp-python's OpenAI server with native tool calls")
    add_args_from_model(parser, Settings)
    args = parser.parse_args()
    server_settings: ServerSettings = parse_model_from_args(ServerSettings, args)  # type: ignore[assignment]
    model_settings: list[ModelSettings] = [parse_model_from_args(ModelSettings, args)]  # type: ignore[list-item]
    app = create_app(server_settings=server_settings, model_settings=model_settings)
    uvicorn.run(ToolCallFront(app), host=os.getenv("HOST", server_settings.host),
                port=int(os.getenv("PORT", str(server_settings.port))))


if __name__ == "__main__":
    main()
