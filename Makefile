# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export VCPRED_VENV := $(VENV)

.PHONY: demo test venv bench clean-venv

venv:
	@bash scripts/ensure_venv.sh

demo: venv
	@$(PY) -m vcpred demo --out runs/demo

test: venv
	$(VENV)/bin/ruff check src tests scripts benchmarks
	$(VENV)/bin/mypy src/vcpred/stats src/vcpred/cohort src/vcpred/imaging
	$(VENV)/bin/lint-imports --no-cache
	# one pytest-xdist worker per core of a 2-core machine, whole files per worker (their module
	# fixtures are built once); tests/conftest.py gives each worker's torch its share of the cores
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: venv
	$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
