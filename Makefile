# envkit developer workflow. `make install` then `make test` is all a machine with Docker needs.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
HOST_TOOLS := mmdebstrap ffmpeg
SHELL := /bin/bash

.PHONY: install host-tools images test test-parallel test-unit lint bench clean

install: host-tools $(VENV)/.installed

# Host tools: mmdebstrap makes the base image (no registry here), ffprobe reads streams.
host-tools:
	@missing=""; command -v mmdebstrap >/dev/null || missing="$$missing mmdebstrap"; \
	command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing host tools:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing host tools:$$missing -- run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

images: install
	$(VENV)/bin/envkit images build

# The engine-wide test (`envkit down --all`) runs alone, after the rest, so it cannot
# remove the stacks of tests running beside it.
test: install
	$(PYTEST) -n 2 -m 'not engine_exclusive' tests
	ENVKIT_TEST_DOWN_ALL=1 $(PYTEST) -m engine_exclusive tests/integration/test_cli.py

test-parallel: install
	$(PYTEST) -n auto -m 'not engine_exclusive' tests

test-unit: install
	$(PYTEST) -m 'not integration' tests/unit

lint: install
	$(VENV)/bin/ruff check envkit tests bench
	$(VENV)/bin/mypy envkit
	@if command -v actionlint >/dev/null; then actionlint .github/workflows/*.yml; else echo "actionlint not installed (no wheel on PyPI for this machine): CI lints workflows; locally: go install github.com/rhysd/actionlint/cmd/actionlint@latest"; fi

bench: install
	$(PY) bench/bench_stack.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
