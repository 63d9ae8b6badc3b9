# minirnn: every target installs what it needs into ./.venv first (only Python and pip needed).
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test
PY := $(VENV)/bin/python
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: setup test experiments experiments-quick bench lint format typecheck cov check clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

setup: $(STAMP)

test: setup
	$(PY) -m pytest -n 2

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

# The kernels run as plain Python with the JIT off, so their lines are measured too; the
# experiments are left to the jitted run (they are not the package, and slow as Python). What
# only exists compiled (kernels called from C: _native.py) is measured in a second, jitted run
# of its tests, added to the first.
cov: setup
	NUMBA_DISABLE_JIT=1 MINIRNN_HYPOTHESIS_EXAMPLES=8 $(PY) -m pytest -q -n 2 --ignore=tests/experiments \
		--cov=minirnn --cov-report=
	$(PY) -m pytest -q tests/test_native.py --cov=minirnn --cov-append --cov-report=term --cov-fail-under=90

check: lint typecheck cov

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage htmlcov *.egg-info
	find minirnn -name '*.nbi' -delete -o -name '*.nbc' -delete -o -name '*.nbt' -delete
