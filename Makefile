# envkit developer workflow. `make install` then `make test` is all a machine with Docker needs.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
HOST_TOOLS := mmdebstrap ffmpeg
SHELL := /bin/bash

.PHONY: install host-tools images test test-parallel test-unit lint lint-images bench clean

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
	$(VENV)/bin/envkit images build --stack default --stack demo

# The engine-wide tests (`envkit down --all`, `envkit gc`, the session-start sweep) run
# alone, after the rest, so they cannot remove the stacks of tests running beside them. The v4l2 test needs a camera device
# (CI's v4l2 job loads v4l2loopback): `$(PYTEST) -m v4l2 tests` where there is one.
test: install
	$(PYTEST) -n 2 -m 'not engine_exclusive and not v4l2' tests
	ENVKIT_TEST_DOWN_ALL=1 $(PYTEST) -m engine_exclusive tests/integration/test_cli.py

test-parallel: install
	$(PYTEST) -n auto -m 'not engine_exclusive and not v4l2' tests

test-unit: install
	$(PYTEST) -m 'not integration' tests/unit

lint: install lint-images
	$(VENV)/bin/ruff check envkit tests bench
	$(VENV)/bin/mypy envkit
	@if command -v actionlint >/dev/null; then actionlint .github/workflows/*.yml; else echo "actionlint not installed (no wheel on PyPI for this machine): CI lints workflows; locally: go install github.com/rhysd/actionlint/cmd/actionlint@latest"; fi

# Code in the build contexts (envkit/contexts, envkit/camera/contexts) runs on Debian bookworm (python3 3.11, python3-aiohttp 3.8, -websockets
# 10.4, -jwt 2.6, -yaml 6.0), not in the dev venv, so it is type-checked in a venv of its
# own (the dev venv needs websockets>=14).
IMG_TYPING ?= $(VENV)/images-typing
IMG_TYPING_PKGS := 'mypy>=1.10' 'aiohttp>=3.8,<3.10' 'websockets==10.4' 'PyJWT==2.6.0' \
	'PyYAML>=6.0,<7' types-PyYAML
# --config-file= : otherwise mypy finds pyproject.toml (python_version 3.10, envkit only).
IMG_MYPY = $(abspath $(IMG_TYPING))/bin/mypy --strict --config-file= --python-version 3.11 --no-namespace-packages \
	--cache-dir $(abspath $(IMG_TYPING))/mypy-cache

$(IMG_TYPING)/.installed: Makefile
	python3 -m venv $(IMG_TYPING)
	$(IMG_TYPING)/bin/python -m pip install -q -U pip
	$(IMG_TYPING)/bin/python -m pip install -q $(IMG_TYPING_PKGS)
	touch $@

lint-images: $(IMG_TYPING)/.installed
	$(VENV)/bin/ruff check --target-version py311 envkit/contexts envkit/camera/contexts
	cd envkit/camera/contexts/camera-service && $(IMG_MYPY) camservice
	cd envkit/camera/contexts/mediamtx-standin && $(IMG_MYPY) mtxstandin
	cd envkit/contexts/testsvc && $(IMG_MYPY) svc.py
	cd envkit/contexts/tcpproxy && $(IMG_MYPY) proxy.py

# envkit beside the raw SDK, testcontainers, docker-compose and pytest-docker, interleaved;
# writes docs/benchmarks.md (about 40 min; BENCH_ARGS=--quick for a smoke run).
bench: install
	$(PY) bench/compare.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
