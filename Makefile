# Every target creates .venv and installs what it needs when that is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MNIST_SHARED := $(abspath ../shared/data/mnist)

# On this project's machines MNIST sits in ../shared/data/mnist: use it as a download mirror
# (the real download-and-verify path still runs). Elsewhere the public mirrors are used.
ifneq ($(wildcard $(MNIST_SHARED)/train-images-idx3-ubyte.gz),)
export SCRATCHNET_MNIST_MIRRORS ?= file://$(MNIST_SHARED)
endif

.PHONY: install test test-all lint format train data run bench clean browser graphviz node-tools lint-frontend

# pip byte-compiles what it installs one file at a time; compileall does it on every core (a
# fresh install on 2 nearly idle cores: 100 s -> 75-99 s). Like pip it skips the files that do
# not compile (torch ships a Python 3.12-only test helper), so its exit status is not checked.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[train,server,reference,dev,export]'
	$(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium for the browser tests (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || \
	  { (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	    echo "chromium could not be installed: browser tests will be skipped"; }

# Debian's graphviz: its `dot` draws scratchnet.viz's graphs (docs/make_graphs.py, test_viz).
graphviz:
	@command -v dot >/dev/null 2>&1 || \
	  { (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || \
	    echo "graphviz could not be installed: the SVG rendering test will be skipped"; }

# The drawing page's linters (eslint, stylelint, prettier), pinned in package-lock.json. Only the
# linting needs Node.js and npm: the page itself runs as it is, with no build step.
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-tools:
	@command -v npm >/dev/null 2>&1 || \
	  { echo "make: npm not found: install Node.js 20 and npm to lint frontend/" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(NODE_STAMP)

lint-frontend: node-tools
	npm run --silent lint

test: $(STAMP) browser graphviz
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory lint-frontend; \
	  else echo "npm not found: skipping the drawing page's lint (eslint, stylelint, prettier)"; fi
	$(PY) -m pytest

test-all: $(STAMP) browser graphviz
	$(PY) -m pytest -m ''

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	@$(MAKE) --no-print-directory lint-frontend

format: $(STAMP) node-tools
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
	npm run --silent format

data: $(STAMP)
	$(PY) -m scratchnet.mnist.data

train: $(STAMP)
	$(PY) -m scratchnet.train --model both

run: $(STAMP)
	@echo "Another origin (a dev page on http://localhost:3000) may call the API when the server"
	@echo "starts with --cors-origins http://localhost:3000 (or SCRATCHNET_CORS_ORIGINS):"
	@echo "  SCRATCHNET_CORS_ORIGINS=http://localhost:3000 make run"
	$(PY) -m server --host 127.0.0.1 --port 8000

bench: $(STAMP)
	$(PY) -m pytest benchmarks -m '' --benchmark-only --benchmark-json=benchmarks/results.json -p no:randomly
	$(PY) benchmarks/report.py benchmarks/results.json
	$(PY) benchmarks/per_process.py
	$(PY) benchmarks/time_to_accuracy.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .benchmarks build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
