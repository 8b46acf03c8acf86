PYTHON ?= python3
PYZ ?= dist/emfix.pyz

.PHONY: test test-other-python lint pytest demo bench pyz dist docs clean

# The one test command (README): installs the test tools, lints, checks the 3.8 floor, runs pytest
# on parallel workers (the tests wait on subprocesses and servers more than on the 2 cores).
WORKERS ?= 3
test:
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	$(MAKE) lint
	$(PYTHON) -m pytest -q -n $(WORKERS) --dist worksteal $(if $(SUITE_MARKERS),-m "$(SUITE_MARKERS)")

# Another Python (CI: the 3.8 floor and the newest): every test but the whole-system scenarios, the
# kill / interrupt / resume / concurrent-writer tests and the slow ones, which the default Python runs
# (conftest.py SCENARIO_MODULES and PROCESS_TEST): they test what happens between processes.
# CI runs both with MARKERS='... and not mysql' (CI's 12 minutes; .ci/run says which MariaDB tests 3.8 runs).
MARKERS ?= not scenario and not processes and not slow
TESTS ?=
test-other-python:
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	$(PYTHON) -m pytest -q -n $(WORKERS) -m "$(MARKERS)" $(TESTS)

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

# One file to copy onto a server: `python3 emfix.pyz validate experiment.db`. Standard library only.
# Reproducible (sorted entries, fixed timestamps): the SHA-256 it prints is written beside it.
pyz:
	$(PYTHON) .ci/build_pyz.py $(PYZ)

# A wheel and an sdist in dist/ (the `build` package is a build-time tool, not a dependency).
dist:
	$(PYTHON) -m pip install -q --disable-pip-version-check build
	$(PYTHON) -m build --outdir dist .

# docs/commands/*.md from the parser's own --help (tests/test_docs.py fails when they drift).
docs:
	$(PYTHON) docs/generate.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .hypothesis emfix-demo
