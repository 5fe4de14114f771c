#!/usr/bin/env bash
# Build llama-cpp-python for the CPU of this machine, without AMX, and install it into the venv given as $1.
#
# Why not a plain `pip install llama-cpp-python`: pip compiles llama.cpp with -march=native and caches the
# wheel under the sdist's name alone, so a wheel compiled on one machine is reused on the next one whatever
# its CPU. On a CPU that lacks an instruction the first machine had, the server dies with SIGILL at its
# first request ("trap invalid opcode ... in libggml-cpu.so"). And AMX code, which -march=native turns on
# where cpuid lists amx_tile, faults in some VMs (seen: `tilezero` raised #UD on a Firecracker guest whose
# cpuid lists amx_tile). So the instruction sets are named explicitly from /proc/cpuinfo (AMX never), and
# the wheel is kept in peerstep's own cache under a key made of the version and those flags: the same CPU
# reuses it, another CPU builds its own.
set -euo pipefail
VENV=${1:?usage: install_llamacpp.sh VENV}
# The version is pyproject.toml's pin of the llamacpp extra, the one place it is written.
VERSION=$(sed -n 's/.*"llama-cpp-python\[server\]==\([0-9][0-9.]*\)".*/\1/p' "$(dirname "$0")/../pyproject.toml")
[[ -n $VERSION ]] || { echo "install_llamacpp.sh: no llama-cpp-python[server]==X pin in pyproject.toml" >&2; exit 1; }
HOME_DIR=${PEERSTEP_HOME:-$HOME/.cache/peerstep}

args=()
if [[ $(uname -m) == x86_64 ]]; then
    flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    has() { [[ $flags == *" $1 "* ]]; }
    args+=(-DGGML_NATIVE=OFF)
    has sse4_2 && args+=(-DGGML_SSE42=ON)
    has f16c && args+=(-DGGML_F16C=ON)
    has fma && args+=(-DGGML_FMA=ON)
    has bmi2 && args+=(-DGGML_BMI2=ON)
    has avx && args+=(-DGGML_AVX=ON)
    has avx2 && args+=(-DGGML_AVX2=ON)
    has avx_vnni && args+=(-DGGML_AVX_VNNI=ON)
    if has avx512f && has avx512cd && has avx512vl && has avx512dq && has avx512bw; then
        args+=(-DGGML_AVX512=ON)
        has avx512vbmi && args+=(-DGGML_AVX512_VBMI=ON)
        has avx512_vnni && args+=(-DGGML_AVX512_VNNI=ON)
        has avx512_bf16 && args+=(-DGGML_AVX512_BF16=ON)
    fi
else
    # other architectures: llama.cpp's native build, keyed by this CPU's feature list
    args+=(-DGGML_NATIVE=ON "-DPEERSTEP_CPU=$( (grep -m1 -iE '^(flags|features)' /proc/cpuinfo || uname -m) | md5sum | cut -c1-12)")
fi
key=$(printf '%s\n' "$VERSION" "${args[@]}" | md5sum | cut -c1-16)
dir="$HOME_DIR/wheels/llama-cpp-python-$key"

if "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama_cpp_python') != '$VERSION')" 2>/dev/null \
        && [[ -f "$VENV/.llamacpp-$key" ]]; then
    exit 0
fi
if ! ls "$dir"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
    echo "compiling llama.cpp $VERSION for this CPU (${args[*]}); 5-15 minutes on 2 cores, once per CPU type"
    mkdir -p "$dir"
    CMAKE_ARGS="${args[*]}" "$VENV/bin/python" -m pip wheel -q --no-cache-dir --no-deps \
        "llama-cpp-python==$VERSION" -w "$dir.tmp"
    mv "$dir.tmp"/llama_cpp_python-*.whl "$dir"/ && rmdir "$dir.tmp"
fi
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$dir"/llama_cpp_python-"$VERSION"-*.whl
rm -f "$VENV"/.llamacpp-*
touch "$VENV/.llamacpp-$key"
