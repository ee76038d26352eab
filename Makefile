# geomap: two commands on a fresh Debian 12 machine.
#   make run   installs what is missing, starts the embedded PostGIS, loads Nanchang, serves
#              (with open reads on: this machine's browser reads without a key)
#   make test  runs the whole suite against a real PostGIS (+ pgRouting) and Chromium
#   make lock  rewrites constraints.txt, the exact versions `make venv` installs, from a fresh
#              venv resolving setup.cfg's ranges anew (run it after changing them; commit the file)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := constraints.txt

# Debian packages: libatomic1 (Playwright's bundled node driver links libatomic.so.1, which
# a bare Debian lacks), the database (PostGIS 3 + pgRouting for PostgreSQL 15), GDAL's
# ogrinfo (the OGC API client used in tests), Chromium (map tests in a real browser), a CJK
# font (without it Chinese labels render as empty boxes; the stations' QR PDF embeds it) and nginx (the reverse proxy the
# proxy tests run in front of the service, with its own config; on a machine with systemd
# Debian also starts nginx's own service on port 80: `systemctl disable --now nginx`).
# postgresql-15 itself comes as their dependency; naming it would upgrade a running server.
SYSTEM_PACKAGES := libatomic1 postgresql-15-postgis-3 postgresql-15-pgrouting gdal-bin chromium \
                   fonts-wqy-microhei nginx

.PHONY: run test deps venv lock db-up db-down seed bench lint fuzz readme clean

run: deps venv db-up
	$(BIN)/geomap seed nanchang --if-empty
	$(BIN)/geomap circles build --minutes 15
	@# The demo reads without keys from this machine only (the map says so); a server does not.
	GEOMAP_OPEN_READ=true $(BIN)/geomap serve

test: deps venv
	$(BIN)/ruff check .
	$(BIN)/pytest

deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing"; \
	    echo "run: sudo apt-get install --no-install-recommends$$missing"; exit 1; \
	  fi; \
	fi

venv: $(STAMP)

# Installed within the versions of $(LOCK), so every machine tests and runs the same ones.
$(STAMP): setup.cfg pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c $(LOCK) -e '.[test]'
	touch $(STAMP)

# A throwaway venv (in a temporary folder, removed after) installs setup.cfg's ranges without
# $(LOCK), so at their newest, and tools/lock.py writes down what that pulled in; .venv keeps
# its versions until the next `make venv`, which the newer $(LOCK) triggers. Run it with the
# oldest interpreter the project supports, Debian 12's python3 (3.11.2), from PyPI alone (e.g.
# in ../shared/tools/fresh-debian.sh's root): a newer 3.11 can pin releases that need it
# (soupsieve 4 needs 3.11.5), and a machine's local wheel folders can pin what PyPI lacks.
lock:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PYTHON) -m venv "$$tmp/venv" && \
	"$$tmp/venv/bin/pip" install -q --disable-pip-version-check -e '.[test]' && \
	"$$tmp/venv/bin/python" tools/lock.py > "$$tmp/$(LOCK)" && \
	mv "$$tmp/$(LOCK)" $(LOCK)

db-up: deps venv
	$(BIN)/geomap db up

db-down: venv
	$(BIN)/geomap db down

seed: db-up
	$(BIN)/geomap seed nanchang

bench: deps venv db-up
	$(BIN)/pip install -q --disable-pip-version-check -c $(LOCK) -e '.[test,bench]'
	$(BIN)/python -m bench

fuzz: deps venv
	GEOMAP_FUZZ_EXAMPLES=300 $(BIN)/pytest tests/test_openapi.py -k fuzz

lint: venv
	$(BIN)/ruff check .

# README.md's settings table, generated from geomap/config.py (tests/test_settings_doc.py checks it)
readme: venv
	$(BIN)/geomap settings --readme README.md

clean:
	-$(BIN)/geomap db down
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
