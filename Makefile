# Two commands do all set-up on a fresh machine:
#   make demo   # creates .venv, installs torch (local CPU build) then ydrop, runs the main job
#   make test   # same set-up, then the test suite
# `make bench` prints the speed figures of docs/performance.md.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first and pinned: a bare `pip install ydrop` would pull the newest CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.ydrop-installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ydrop compare

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
