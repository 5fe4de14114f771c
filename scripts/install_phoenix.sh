#!/usr/bin/env bash
# Build an Arize Phoenix server in its own venv at ${PEERSTEP_HOME:-~/.cache/peerstep}/phoenix-venv, where the
# OpenTelemetry export test (tests/e2e/test_phoenix_e2e.py) starts it on loopback and reads the exported spans back.
# A separate venv because arize-phoenix pins many packages (SQLAlchemy, grpc, pandas, ...) that may clash with
# peerstep's own environment; peerstep itself only needs the `otel` extra to send traces.
# Idempotent: does nothing when the venv already imports phoenix at this version.
set -euo pipefail

PHOENIX_VERSION="${PHOENIX_VERSION:-20.26.1}"
HOME_DIR="${PEERSTEP_HOME:-$HOME/.cache/peerstep}"
VENV="$HOME_DIR/phoenix-venv"
PYTHON="${PYTHON:-python3}"
MARKER="$VENV/.peerstep-phoenix-$PHOENIX_VERSION"

if [ -f "$MARKER" ] && "$VENV/bin/python" -c "import phoenix" >/dev/null 2>&1; then
    echo "install_phoenix: present ($VENV)"
    exit 0
fi

echo "install_phoenix: building $VENV with arize-phoenix==$PHOENIX_VERSION (a minute or two)"
mkdir -p "$HOME_DIR"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/pip" install -q --disable-pip-version-check "arize-phoenix==$PHOENIX_VERSION"
"$VENV/bin/python" -c "import phoenix; print('install_phoenix: phoenix', phoenix.__version__)"
touch "$MARKER"
