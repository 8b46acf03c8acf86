PYTHON ?= python3

.PHONY: test lint pytest demo bench pyz clean

# The one test command (README): installs the test tools, lints, checks the 3.8 floor, runs pytest.
test:
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	$(MAKE) lint
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check emfix tests bench
	vermin --target=3.8- --no-tips --violations --quiet emfix

pytest:
	$(PYTHON) -m pytest -q

demo:
	$(PYTHON) -m emfix demo emfix-demo --force

# Slow (generates 10M-row databases under bench/data once): never part of `make test`.
bench:
	$(PYTHON) bench/bench_validate.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .hypothesis emfix-demo
