# Verifier: `make run` sets up and serves the demo; `make test` installs and runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: install system-deps run-deps services migrate demo run serve loadtest worker test test-sqlite test-postgres lint format bench screenshots messages translations clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# Debian packages the app and the browser tests need (libmagic, Chromium and its driver).
system-deps:
	@scripts/system-deps.sh

run-deps:
	@scripts/system-deps.sh run

migrate: install
	$(BIN)/verifier migrate

demo: migrate
	VERIFIER_BASE_URL=$${VERIFIER_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/verifier demo

run: run-deps demo
	@BIN=$(BIN) HOST=$(HOST) PORT=$(PORT) scripts/run.sh

worker: migrate
	$(BIN)/verifier worker

# Production layout: nginx on HOST:PORT buffering every request, gunicorn (4x4) behind it on a
# unix socket (scripts/serve.sh, deploy/nginx.conf.in; set VERIFIER_* first). Ctrl+C stops both.
serve: run-deps migrate
	@BIN=$(BIN) HOST=$(HOST) PORT=$(PORT) scripts/serve.sh

# A bounded load of orders, customer visits and reviews against that layout, then a check that
# nothing was lost or doubled (60 s by default: make loadtest LOADTEST_ARGS="--seconds 120";
# PostgreSQL too with VERIFIER_LOADTEST_DATABASE_URL).
loadtest: install run-deps
	$(BIN)/python -m bench.loadtest $(LOADTEST_ARGS)

test: install system-deps services lint test-sqlite test-postgres

# Redis for the shared rate-limit tests (started when it does not answer).
services:
	@scripts/redis-up.sh

test-sqlite: install
	env -u VERIFIER_TEST_DATABASE_URL $(BIN)/python -m pytest $(PYTEST_ARGS)

# The same database tests again on PostgreSQL when VERIFIER_TEST_DATABASE_URL is set (.ci/run does).
test-postgres: install
	@if [ -n "$$VERIFIER_TEST_DATABASE_URL" ]; then \
		echo "== PostgreSQL pass: $$VERIFIER_TEST_DATABASE_URL"; \
		$(BIN)/python -m pytest -m "not browser" $(PYTEST_ARGS); \
	else \
		echo "== PostgreSQL pass skipped: set VERIFIER_TEST_DATABASE_URL to run it"; \
	fi

lint: install
	$(BIN)/ruff check verifier tests bench wsgi.py gunicorn.conf.py
	$(BIN)/ruff format --check verifier tests bench wsgi.py gunicorn.conf.py
	$(BIN)/mypy

format: install
	$(BIN)/ruff format verifier tests bench wsgi.py
	$(BIN)/ruff check --fix verifier tests bench wsgi.py

# Every benchmark with its floor and goal, then a summary; PostgreSQL too when
# VERIFIER_BENCH_DATABASE_URL names a server (a fresh database is made on it for each run).
bench: install system-deps
	$(BIN)/python -m bench

# The customer's languages (docs/developing.md): `make messages` extracts every customer-facing
# string into verifier/translations/messages.pot and merges it into each locale's messages.po;
# translate the new or fuzzy entries, then `make translations` compiles the .mo files (committed,
# and checked against their .po by tests/portal/test_translations.py).
LOCALES := de fr es
TRANSLATIONS := verifier/translations
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k _ -k gettext -k ngettext:1,2 --no-location \
		--sort-output --project=Verifier --copyright-holder=Verifier -o $(TRANSLATIONS)/messages.pot .
	@for l in $(LOCALES); do \
		if [ -f $(TRANSLATIONS)/$$l/LC_MESSAGES/messages.po ]; then \
			$(BIN)/pybabel update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) -l $$l --no-wrap --ignore-obsolete; \
		else \
			$(BIN)/pybabel init -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) -l $$l --no-wrap; \
		fi; \
	done

translations: install
	$(BIN)/pybabel compile -d $(TRANSLATIONS) --statistics

# Refresh README's screenshots from the real pages (the browser tests take them).
screenshots: install system-deps
	VERIFIER_UPDATE_SCREENSHOTS=1 env -u VERIFIER_TEST_DATABASE_URL $(BIN)/python -m pytest -m browser -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
