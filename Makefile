# Two commands on a fresh machine: `make serve` and `make test`. Both are idempotent:
# a stamp keyed on pyproject.toml skips the install when nothing changed.
# Another interpreter: `make test PYTHON=python3.10` (its own venv, .venv-3.10).
PYTHON ?= python3
# A pythonX.Y that is not on PATH but installed by pyenv is found there (the CI machine's case).
PY     := $(shell $(PYTHON) -c '' 2>/dev/null && echo $(PYTHON) || { \
            v=$$(pyenv versions --bare 2>/dev/null | grep -x '$(subst .,\.,$(PYTHON:python%=%))\.[0-9]*' | tail -n1); \
            [ -n "$$v" ] && echo "$$(pyenv root)/versions/$$v/bin/$(PYTHON)"; })
PY_VERSION := $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
DEFAULT_VERSION := $(shell python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# One venv per interpreter version: .venv for the default python3, .venv-X.Y for the others.
VENV   := $(if $(filter $(DEFAULT_VERSION),$(PY_VERSION)),.venv,.venv-$(PY_VERSION))
BIN    := $(VENV)/bin
# The snac extra (torch) only where a CPU torch wheel is at hand: for 3.10 PyPI has only the
# multi-GB CUDA build, so the torch tests skip there (tests/extras.py) and run on 3.11.
comma  := ,
TEST_EXTRAS := $(if $(filter 3.10,$(PY_VERSION)),test,test$(comma)snac)
HOST   ?= 127.0.0.1
PORT   ?= 5005
KEY    := $(shell sha1sum pyproject.toml | cut -c1-12)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_SERVE := espeak-ng
APT_TEST  := espeak-ng ffmpeg sox chromium curl haproxy

.PHONY: serve test lint bench install install-test apt-serve apt-test apt-bench e2e unit clean

serve: $(VENV)/.stamp-serve-$(KEY) apt-serve
	HOST=$(HOST) PORT=$(PORT) $(BIN)/morpheus serve --host $(HOST) --port $(PORT)

test: lint apt-test
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# ruff (style, imports, async pitfalls) on the whole tree, mypy on the server's packages; their
# settings are in pyproject.toml. `make test` runs this first: a finding fails the build.
lint: $(VENV)/.stamp-test-$(KEY)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every part of the benchmark (docs/bench/bench.md): about an hour; BENCH_ARGS="--parts soak".
bench: $(VENV)/.stamp-test-$(KEY) apt-serve apt-bench
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

apt-bench:  # the soak runs two replicas behind Debian's haproxy
	@command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy; }

$(VENV)/bin/python:
	@[ -n "$(PY_VERSION)" ] || { echo "PYTHON=$(PYTHON): no such interpreter here" >&2; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(VENV)/.stamp-serve-$(KEY): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	rm -f $(VENV)/.stamp-serve-*
	touch $@

$(VENV)/.stamp-test-$(KEY): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[$(TEST_EXTRAS)]'
	rm -f $(VENV)/.stamp-test-* $(VENV)/.stamp-serve-*
	touch $@ $(VENV)/.stamp-serve-$(KEY)

apt-serve:
	@command -v espeak-ng >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(APT_SERVE); }

apt-test:
	@missing=""; for p in espeak-ng ffmpeg sox chromium curl haproxy; do command -v $$p >/dev/null || [ -x /usr/sbin/$$p ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_TEST); fi

clean:
	rm -rf .venv .venv-3.* outputs .pytest_cache
