# Miso runtime: `make run` serves, `make test` runs every test. Both create .venv when missing
# and reinstall only when requirements.txt, setup.cfg or pyproject.toml changed.

PYTHON ?= python3
# llama-cpp-python compiles llama.cpp from source: use every core.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test doctor install bench clean

$(BIN)/python:
	@$(PYTHON) miso_runtime/doctor.py --python-only
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.txt setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/miso-runtime serve

test: install
	$(BIN)/python -m pytest

doctor:
	@$(PYTHON) miso_runtime/doctor.py

bench: install
	$(BIN)/python bench/chat_stream.py

clean:
	rm -rf $(VENV) build *.egg-info
