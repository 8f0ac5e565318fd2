# Two commands on a fresh machine: `make serve` and `make test`. Both are idempotent:
# a stamp keyed on pyproject.toml skips the install when nothing changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5005
KEY    := $(shell sha1sum pyproject.toml | cut -c1-12)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_SERVE := espeak-ng
APT_TEST  := espeak-ng ffmpeg sox chromium curl

.PHONY: serve test bench install install-test apt-serve apt-test e2e unit clean

serve: $(VENV)/.stamp-serve-$(KEY) apt-serve
	HOST=$(HOST) PORT=$(PORT) $(BIN)/morpheus serve --host $(HOST) --port $(PORT)

test: $(VENV)/.stamp-test-$(KEY) apt-test
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(VENV)/.stamp-test-$(KEY) apt-serve
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(VENV)/.stamp-serve-$(KEY): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	rm -f $(VENV)/.stamp-serve-*
	touch $@

$(VENV)/.stamp-test-$(KEY): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test,snac]'
	rm -f $(VENV)/.stamp-test-* $(VENV)/.stamp-serve-*
	touch $@ $(VENV)/.stamp-serve-$(KEY)

apt-serve:
	@command -v espeak-ng >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(APT_SERVE); }

apt-test:
	@missing=""; for p in espeak-ng ffmpeg sox chromium curl; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_TEST); fi

clean:
	rm -rf $(VENV) outputs .pytest_cache
