# Everyday commands: run the embedded default, test, lint. The virtualenv is made on first use.

VENV := .venv
PYTHON := $(VENV)/bin/python
# Runtime packages (what `make run` needs), then the test, lint and benchmark tools on top.
STAMP := $(VENV)/.requirements-installed
DEV_STAMP := $(VENV)/.requirements-dev-installed
TEST_DATABASE_URL := $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/alarmbroker)
TEST_REDIS_URL := $(or $(REDIS_URL),redis://127.0.0.1:6379/0)

.PHONY: run test faults lint migrate demo bench bench-fanout bench-oncall bench-board bench-throttle

# A Ctrl-C stops it with status 0 (at a terminal the runner takes the Ctrl-C from make).
run: $(STAMP)
	$(PYTHON) -m alarmsite.runner

# Twice: PostgreSQL and Redis (row locks, SKIP LOCKED), then the SQLite default without the
# tests that need row locks, nor those in a browser (they test the page, once is enough).
test: $(DEV_STAMP)
	DATABASE_URL='$(TEST_DATABASE_URL)' REDIS_URL='$(TEST_REDIS_URL)' $(VENV)/bin/pytest
	env -u DATABASE_URL REDIS_URL='$(TEST_REDIS_URL)' $(VENV)/bin/pytest -m "not postgres and not browser"

# The fault suite (README, "Fault suite"): every scenario, the long ones too, each against real
# processes on private Redis servers and a private PostgreSQL cluster; one PASS/FAIL line each.
faults: $(DEV_STAMP)
	DATABASE_URL='$(TEST_DATABASE_URL)' REDIS_URL='$(TEST_REDIS_URL)' $(VENV)/bin/pytest alarms/tests/faults --faults -v

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

migrate: $(STAMP)
	$(PYTHON) manage.py migrate --noinput

demo: migrate
	$(PYTHON) manage.py load_demo

$(PYTHON):
	python3 -m venv $(VENV)

# Reinstall only when requirements.txt changed since the last install.
$(STAMP): requirements.txt | $(PYTHON)
	$(PYTHON) -m pip install -r requirements.txt
	touch $(STAMP)

# The same for requirements-dev.txt (which includes requirements.txt), after the runtime ones.
$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(PYTHON) -m pip install -r requirements-dev.txt
	touch $(DEV_STAMP)

# The benchmark: its own stack on this machine's PostgreSQL and Redis, load from other processes,
# Alertmanager beside it when installed; one table. Several minutes; BENCH_ARGS=--quick for less.
bench: $(DEV_STAMP)
	$(PYTHON) bench/bench.py $(BENCH_ARGS)

# Fan-out benchmark: its own stack on this machine's PostgreSQL and Redis; prints one table.
bench-fanout: $(DEV_STAMP)
	$(PYTHON) bench/fanout.py

# A storm of 1,000 alarms to 5 phones under the SMS limit (shortened to 5 per 30 s); one table.
bench-throttle: $(DEV_STAMP)
	$(PYTHON) bench/throttle.py $(BENCH_ARGS)

# What resolving who is on call costs (3 layers, 20 participants, 50 overrides); one table.
bench-oncall: $(DEV_STAMP)
	$(PYTHON) bench/oncall.py

# The board in headless Chromium with 100, 1,000 and 10,000 open alarms; prints one table.
bench-board: $(DEV_STAMP)
	$(PYTHON) bench/board_browser.py $(BENCH_ARGS)
