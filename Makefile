# minirnn: every target installs what it needs into ./.venv first (only Python and pip needed).
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
comma := ,

.PHONY: setup test experiments experiments-quick bench lint format typecheck cov check clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

setup: $(STAMP)

test: setup
	$(PY) -m pytest

experiments: setup
	$(PY) -m minirnn experiments

experiments-quick: setup
	$(PY) -m minirnn experiments --quick

bench: setup
	$(PY) benchmarks/bench_rnn.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

typecheck: setup
	$(PY) -m mypy

# The kernels run as plain Python with the JIT off, so their lines are measured too.
cov: setup
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -p no:randomly --cov=minirnn --cov-report=term --cov-fail-under=90

check: lint typecheck cov

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage htmlcov *.egg-info
