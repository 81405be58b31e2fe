# Set-up and checks; every target works on a fresh machine (it creates .venv itself).
#   make run    install, write sample data, run the default topology.yaml on it
#   make test   install the test tools, lint, type-check and run the whole test suite

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check pytest sysdeps bench clean

# Programs the tests drive for real, from Debian's packages when missing: a terminal
# multiplexer for the monitor, a browser for the web monitor, an MQTT broker for the bridge,
# a MariaDB server for the usage history, an OpenLDAP server for identities (and openssl
# for its test certificates), shellcheck and systemd-analyze for the job scripts and units
# in deploy/, ip (iproute2) for the network namespaces that stand for several hosts, and
# podman and debootstrap to build the container image (on a base made from Debian's packages).
SYSDEPS := tmux:tmux chromium:chromium chromedriver:chromium-driver mosquitto:mosquitto \
           mariadbd:mariadb-server mariadb-install-db:mariadb-server slapd:slapd \
           openssl:openssl shellcheck:shellcheck ip:iproute2 systemd-analyze:systemd \
           podman:podman debootstrap:debootstrap

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The sample: five volumes of every wrstat era, each with the four days before it (for the
# history and its forecasts), and who owns it (names, PIs, quotas) in two files beside it.
SAMPLE := sample-data/wrstat

# The run ends by shipping its reports to an ingress service: a local one here, started
# for the run (what it stores stays in sample-data/ingress-store), stopped after it.
run: $(STAMP)
	$(VENV)/bin/pipeline gen wrstat $(SAMPLE) --history 4
	@rm -f sample-data/ingress.out; \
	$(VENV)/bin/pipeline ingress-server --store sample-data/ingress-store \
	  >sample-data/ingress.out 2>sample-data/ingress.log & server=$$!; \
	for i in $$(seq 50); do grep -q listening sample-data/ingress.out 2>/dev/null && break; \
	  sleep 0.2; done; cat sample-data/ingress.out; \
	$(VENV)/bin/pipeline run topology.yaml -e WRSTAT_SNAPSHOTS=all \
	  -e IDENTITIES=$(SAMPLE)/identities.tsv -e QUOTA_FILE=$(SAMPLE)/quotas.csv; \
	status=$$?; kill $$server; wait $$server; exit $$status

check: $(STAMP)
	$(VENV)/bin/ruff check pipeline stages bench tests
	$(VENV)/bin/ruff format --check pipeline stages bench tests
	$(VENV)/bin/mypy

sysdeps:
	@missing=""; for pair in $(SYSDEPS); do \
	  prog=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$prog >/dev/null 2>&1 || [ -x /usr/sbin/$$prog ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

pytest: $(STAMP) sysdeps
	$(PY) -m pytest

test: check pytest

bench: $(STAMP)
	$(PY) -m bench transport
	$(PY) -m bench wrstat
	$(PY) -m bench history
	$(PY) -m bench diff
	$(PY) -m bench scaling

clean:
	rm -rf $(VENV) .pipeline sample-data out .mypy_cache .ruff_cache .pytest_cache
