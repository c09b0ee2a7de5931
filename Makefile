# The two entry points of the README:
#   make book   set up, then build the site with every notebook executed at full fidelity
#   make test   set up, then run the tests (notebooks in quick mode, site build, browser, loader)
# Both run JOBS notebooks at once (default: the machine's cores). After a full
# `make book`, `make results` refreshes book/results.json; `make book
# STRICT_RESULTS=1` fails if a glued value moved beyond its tolerance.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# An accelerator's jax build: `make book JAX_EXTRA=cuda12` (NVIDIA GPU, CUDA 12),
# cuda13, or tpu (a TPU VM). Empty: the CPU build of requirements.txt.
JAX_EXTRA ?=
JAX_VERSION := $(shell sed -n 's/^jax==//p' requirements.txt)
# Notebooks executed at once: the cores (one on a TPU, which one process holds).
JOBS ?= $(if $(filter tpu,$(JAX_EXTRA)),1,$(shell nproc))
STRICT_RESULTS ?=

.PHONY: book test results setup browser colab-base serve clean

$(BIN)/jupyter-book: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

setup: $(BIN)/jupyter-book
ifneq ($(JAX_EXTRA),)
	$(BIN)/python -m pip install --quiet "jax[$(JAX_EXTRA)]==$(JAX_VERSION)"
endif

browser:  ## Debian's chromium for the browser test (needs root; skipped if present)
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

book: setup
	env -u BOOK_QUICK $(BIN)/python book/_ext/execute.py --jobs $(JOBS)
	env -u BOOK_QUICK $(BIN)/jupyter-book build . -W -n --keep-going
	$(BIN)/python book/_ext/results.py compare $(if $(filter 1,$(STRICT_RESULTS)),--strict)
	@echo "The site is at $(abspath _build/html/index.html)"

results:  ## book/results.json from the last full `make book`
	$(BIN)/python book/_ext/results.py update

colab-base: setup  ## the Colab simulation's base environment (built once, cached)
	$(BIN)/python tests/test_colab.py

test: setup browser colab-base
	$(BIN)/python -m pytest -n $(JOBS)

serve:  ## view the built site at http://127.0.0.1:8000
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory _build/html

clean:
	rm -rf _build
