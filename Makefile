# The two set-up commands of the README. Both create or reuse .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed

# Python writes each module's bytecode (.pyc) on its first import, unless PYTHONDONTWRITEBYTECODE is set,
# as it is on some machines and images (this project's among them). Then, with pip's --no-compile below, no
# .pyc ever exists and every process compiles torch, Ray and spaCy from source again: importing the
# extraction stack took 5.2 s a process instead of 2.4 s (Xeon, 2 cores), and the test suite, the demo
# and every Ray worker start dozens of processes. So the recipes write it once, where it is first imported.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: test demo lint clean-demo

# torch is pinned in pyproject.toml; on the project's machines pip takes it from local disk.
# --no-compile: byte-compiling every installed module (torch's CUDA build, Ray, spaCy) took a third of
# the install (129 s against 85 s on a 2-core EPYC); Python compiles what is imported, once, when it is.
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
	$(PY) -m pipeline.demo

clean-demo:
	rm -rf demo
