# The two set-up commands of the README. Both create or reuse .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed

# Some images set PYTHONDONTWRITEBYTECODE; with pip's --no-compile below no .pyc would then ever exist, and
# every process (the tests, the demo, each Ray worker) would compile torch, Ray and spaCy again, about twice
# the import time (docs/benchmarks.md). So the recipes let Python write each module's bytecode once.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: test demo lint clean-demo

# torch is pinned in pyproject.toml. --no-compile: byte-compiling every installed module (torch's CUDA build,
# Ray, spaCy) takes a third of the install; Python compiles what is imported, once, when it is.
$(DEPS): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -e '.[dev]'
	touch $@

test: $(DEPS)
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(DEPS)
	$(PY) -m ruff check .

demo: $(DEPS)
	$(PY) -m hscnet.pipeline.demo

clean-demo:
	rm -rf demo
