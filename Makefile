# shinha — every target creates or reuses .venv by itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages the tests use: real Nagios plugins (and nagios4 for the bench comparison).
DEB_PACKAGES := monitoring-plugins-basic nagios4-core iproute2 mariadb-server mariadb-backup mariadb-client

.PHONY: run test lint bench deps deps-run venv clean docs chaos

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The default configuration runs real Nagios plugins: install them when we can.
deps-run:
	@dpkg -s monitoring-plugins-basic >/dev/null 2>&1 || $(MAKE) --no-print-directory deps

# Install the Debian packages the tests need when running as root (CI, a fresh machine).
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; then \
	    echo "installing:$$missing"; \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (install them as root)"; exit 1; fi; \
	fi

# Start the default one-host cluster (etc/) on loopback; Ctrl-C stops it.
run: $(STAMP) deps-run
	$(VENV)/bin/shinha check-config etc/shinha.cfg >/dev/null || $(VENV)/bin/shinha check-config etc/shinha.cfg
	$(VENV)/bin/shinha run -c etc/shinha.cfg

test: $(STAMP) deps
	$(PY) -m pytest -q

# The long chaos form: every fault several times under load, a few minutes; prints the report
# (one JSON line) that docs/high-availability.md quotes. SHINHA_CHAOS_SEED=N replays a run.
chaos: $(STAMP) deps
	SHINHA_CHAOS=long $(PY) -m pytest -q -s -m chaos tests/test_chaos.py

lint: $(STAMP)
	$(VENV)/bin/ruff check shinha tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/config_load.py

docs: $(STAMP)
	$(PY) -m shinha.config.docgen

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
