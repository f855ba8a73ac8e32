# The README's two commands are `make demo` and `make test`; both install what they need on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export DJANGO_SETTINGS_MODULE := marketplace.settings
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/marketplace
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install browser demo test test-fast serve worker stripe lint bench-auction bench-training clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Debian's Chromium for the browser tests (never `playwright install`: it downloads a browser).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: sudo apt-get install chromium"; exit 1; fi; }

demo: install
	$(PY) manage.py demo

test: install browser
	bash .ci/services
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} $(PY) -m pytest -q

test-fast: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) -m pytest -q -m "not slow and not integration and not browser"

# Everything a round through the browser needs, on the embedded defaults (Procfile.dev, run by honcho): the site under
# uvicorn (ASGI, so /v1/ streams), a worker, the scheduler, localstripe and the inference engine. Ctrl-C stops them all.
PORT ?= 8000
INFERENCE_PORT ?= 8100
serve: install
	$(PY) manage.py migrate --noinput
	VENV_BIN=$(abspath $(VENV))/bin SITE_PORT=$(PORT) LOCALSTRIPE_PORT=$(LOCALSTRIPE_PORT) INFERENCE_PORT=$(INFERENCE_PORT) \
	  INFERENCE_URL=$${INFERENCE_URL:-http://127.0.0.1:$(INFERENCE_PORT)} \
	  STRIPE_API_BASE=$${STRIPE_API_BASE-http://127.0.0.1:$(LOCALSTRIPE_PORT)} \
	  $(VENV)/bin/honcho start -f Procfile.dev

# localstripe by hand, on 127.0.0.1 only, state under var/localstripe/ (the demo and the tests start their own).
LOCALSTRIPE_PORT ?= 8420
stripe: install
	$(PY) -m marketplace.localstripe_server --port $(LOCALSTRIPE_PORT) --state var/localstripe/state

worker: install
	$(PY) -m celery -A marketplace worker -Q default,training -c 1 -l info

# ruff; the layer contract (.importlinter, drawn in docs/architecture.md); mypy over the pure libraries, then with
# django-stubs over the site's domain layers.
SITE_TYPED := marketplace/core marketplace/accounts marketplace/groups marketplace/rounds marketplace/billing marketplace/deals \
	marketplace/delivery marketplace/sponsored \
	marketplace/orchestration training/services training/selectors.py training/models.py
lint: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy auctions training/lib economics inference
	$(PY) -m mypy --config-file mypy-site.toml $(SITE_TYPED)

bench-auction: install
	$(PY) bench/auction.py

bench-training: install
	$(PY) bench/training.py

clean:
	rm -rf var/demo var/celery-broker var/screenshots
