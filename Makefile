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
# Ray, spaCy) takes a third of the install; Python compiles what is imported, once, when it is. The import
# after it compiles what the commands use in one process, before Ray's processes and workers would each
# compile the same modules at once on their first start.
$(DEPS): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -e '.[dev]'
	$(PY) -c 'import av, ray, spacy, hscnet.grounder, hscnet.train, hscnet.pipeline.extraction, hscnet.pipeline.ray_workers'
	touch $@

# Two test processes: much of the suite waits on subprocesses, Ray and video decoding, so a second process
# keeps both cores of a 2-core machine busy (docs/benchmarks.md). `make test TEST_PROCESSES=0` runs them in one.
TEST_PROCESSES ?= 2

test: $(DEPS)
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadscope

lint: $(DEPS)
	$(PY) -m ruff check .

demo: $(DEPS)
	$(PY) -m hscnet.pipeline.demo

clean-demo:
	rm -rf demo
