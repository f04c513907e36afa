# The few targets a newcomer needs. `make run` and `make test` are the README's first two.
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: install run test unit integration lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,ray,multiplex]'
	touch $@

install: $(VENV)/.installed

run: install            ## smoke load (100 CPS, 10 s) against the embedded private server
	$(VENV)/bin/loadengine run --profile smoke

test: install           ## the whole suite: unit + integration (real private MariaDB)
	$(PY) -m pytest -q tests

unit: install
	$(PY) -m pytest -q tests/unit

integration: install
	$(PY) -m pytest -q tests/integration

lint: install
	$(VENV)/bin/ruff check loadengine tests benchmarks
	$(VENV)/bin/mypy loadengine

bench: install          ## acceptance runs (5K and 10K CPS, 3 repeats); nothing else on the machine
	$(PY) benchmarks/acceptance.py --repeat 3 --cases 5k,10k --out results/acceptance.json

clean:
	rm -rf $(VENV) results .pytest_cache
