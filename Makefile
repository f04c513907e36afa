# The few targets a newcomer needs. `make run` and `make test` are the README's first two.
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: install deps docs pipeline run test unit integration pipeline-tests lint bench wheel-smoke clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,ray,multiplex,debezium]'
	touch $@

install: $(VENV)/.installed

run: install            ## smoke load (100 CPS, 10 s) against the embedded private server
	$(VENV)/bin/loadengine run --profile smoke

deps:                   ## system packages the tests need (installed as root, else named)
	.ci/system-deps

pipeline: install deps  ## private server -> real Debezium -> RabbitMQ -> a 1,000 CPS load followed live
	$(VENV)/bin/loadengine pipeline --target-cps 1000 --duration 15 --workers 2

test: install deps      ## the whole suite: unit + integration (real MariaDB, RabbitMQ, Debezium)
	$(PY) -m pytest -q tests

unit: install
	$(PY) -m pytest -q tests/unit

integration: install deps
	$(PY) -m pytest -q tests/integration

pipeline-tests: install deps  ## only the slow tests with a real Debezium
	$(PY) -m pytest -q -m pipeline tests

docs: install           ## regenerate docs/configuration.md from the settings table
	$(PY) -c "from loadengine.settings import reference_markdown as r; open('docs/configuration.md', 'w').write(r())"

lint: install
	$(VENV)/bin/ruff check loadengine tests benchmarks
	$(VENV)/bin/mypy loadengine

bench: install          ## acceptance runs (5K and 10K CPS, 3 repeats); nothing else on the machine
	$(PY) benchmarks/acceptance.py --repeat 3 --cases 5k,10k --out results/acceptance.json

wheel-smoke:            ## build the wheel, install it in a fresh venv, run from another directory
	rm -rf build/wheel-smoke && mkdir -p build/wheel-smoke/elsewhere
	python3 -m pip wheel -q --no-deps -w build/wheel-smoke .
	python3 -m venv build/wheel-smoke/venv
	build/wheel-smoke/venv/bin/pip install -q build/wheel-smoke/loadengine-*.whl
	cd build/wheel-smoke/elsewhere && ../venv/bin/loadengine run --profile smoke --duration 3
	cd build/wheel-smoke/elsewhere && ../venv/bin/loadengine run --workload payments --target-cps 200 --duration 2
	cd build/wheel-smoke/elsewhere && ../venv/bin/python -c "from loadengine.tools.suite import load_suite; print('suite:', load_suite('standard')['_name'])"

clean:
	rm -rf $(VENV) results .pytest_cache build
