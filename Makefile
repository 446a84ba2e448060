# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
PORT ?= 5000
.PHONY: run test lint bench load install extract-messages chromium clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Refresh the catalogs after changing interface text (then translate the new strings;
# the app compiles the catalogs itself when they changed).
extract-messages: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o magazine/translations/messages.pot --no-location --sort-output .
	$(VENV)/bin/pybabel update -i magazine/translations/messages.pot -d magazine/translations --no-fuzzy-matching --ignore-obsolete

# The embedded default: SQLite in instance/, demo data on the first run, web + scheduler.
run: install
	$(FLASK) db upgrade
	@if [ ! -f instance/.demo-loaded ]; then $(FLASK) demo load && touch instance/.demo-loaded; fi
	@echo "Kinderopvang Magazine: http://127.0.0.1:$(PORT)  (demo logins: <role>@demo.example / demo-password)"
	@trap 'kill $$scheduler 2>/dev/null' EXIT INT TERM; \
	$(FLASK) scheduler & scheduler=$$!; \
	PORT=$(PORT) $(FLASK) run --host 127.0.0.1 --port $(PORT) --no-reload

# Debian's Chromium for the browser test; without it (no root, no apt) that test skips.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: the browser test will skip"; \
	  else echo "chromium is missing and cannot be installed here: the browser test will skip"; fi; }

# pytest on SQLite; with TEST_DATABASE_URL set, on that PostgreSQL instead.
test: install chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/bandit -q -c pyproject.toml -r magazine editorial subscriptions business wsgi.py
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m bench

# Load and soak (not part of `make test`): 100 sessions for 60 s on gunicorn + a throwaway
# PostgreSQL database (LOAD_PG_URL names the server), then every count checked.
load: install
	$(PY) -m bench.load $(LOAD_ARGS)

clean:
	rm -rf $(VENV) instance *.egg-info .pytest_cache tests/artifacts
