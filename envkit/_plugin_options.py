"""The plugin's options and ini values, and the settings and ids they resolve to.

Everything here reads the command line, the ini file and the environment, and nothing
else: no engine, no kit. The rest of the plugin asks these functions what the run was
told, so one place ranks the command line, ``ENVKIT_*`` variables and the ini file.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from envkit.config import Settings, new_session_id, sanitize_ident
from envkit.errors import EnvkitError

OPTIONS_KEY = pytest.StashKey[dict[str, str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envkit", "envkit: isolated container stacks per worker")
    group.addoption(
        "--envkit-stack", metavar="NAME|PATH", default=None,
        help="stack for the envkit_stack fixture: a kit's stack name or a YAML stack file, "
        "relative to the rootdir (default: ini envkit_stack, $ENVKIT_STACK, else 'default')",
    )
    group.addoption(
        "--envkit-ready-timeout", metavar="SECONDS", type=float, default=None,
        help="default readiness deadline per service (default: $ENVKIT_READY_TIMEOUT or 60)",
    )
    group.addoption(
        "--envkit-no-leak-check", action="store_true", default=False,
        help="do not fail the run when envkit resources of this session remain at its end",
    )
    group.addoption(
        "--envkit-artifacts", metavar="DIR", default=None,
        help="for each failed test, write each service's full log, its inspect JSON and "
        "the stack's description under DIR/<test>/<stack>/ (for CI to upload)",
    )
    group.addoption(
        "--envkit-keep-on-failure", action="store_true", default=False,
        help="leave a failed test's stacks running, spared by the reaper and the leak check "
        "until `envkit down <stack>`; the report says how to reach them",
    )
    group.addoption(
        "--envkit-logs", metavar="DIR", default=None,
        help="stream every service's log live into DIR/<stack>.log while tests run",
    )
    group.addoption(
        "--envkit-sync-teardown", action="store_true", default=False,
        help="remove each test's stacks in its teardown, not in the background while the "
        "next test starts (the run still waits for background removals at its end)",
    )
    group.addoption(
        "--envkit-pool", metavar="N", type=int, default=None,
        help="spares of each spec envkit_stack_factory is asked for, kept started per worker "
        "in the background so the next test takes one at once; 0 turns it off "
        f"(default: ini envkit_pool, else {DEFAULT_POOL})",
    )
    group.addoption(
        "--envkit-pool-max-spares", metavar="N", type=int, default=None,
        help="spares a worker keeps across all specs; over it, the spares of the spec asked "
        f"for least recently go (default: ini envkit_pool_max_spares, else {DEFAULT_MAX_SPARES})",
    )
    group.addoption(
        "--envkit-no-sweep", action="store_true", default=False,
        help="do not remove dead test runs' stacks before the first stack "
        "(see `envkit gc`; $ENVKIT_GC_OLDER_THAN also removes any stack that old)",
    )
    parser.addini("envkit_stack", "stack for envkit_stack: a kit's stack name or a YAML file "
                  "relative to the rootdir", default=None)
    parser.addini("envkit_kits", "kits in this project: module:attribute references",
                  type="linelist", default=[])
    parser.addini("envkit_project", "namespace of this project's image tags "
                  "(default: the rootdir's name)", default=None)
    parser.addini("envkit_pool", "spares per spec per worker (--envkit-pool)", default=None)
    parser.addini("envkit_pool_max_spares", "spares per worker across all specs "
                  "(--envkit-pool-max-spares)", default=None)
    parser.addini("envkit_pool_stacks", "stacks (names or YAML files) whose spares each worker "
                  "starts at its start, while collection runs", type="linelist", default=[])
    parser.addini("envkit_base_packages", "Debian packages this project's base image adds",
                  type="linelist", default=[])


def kit_options(config: pytest.Config) -> MutableMapping[str, str]:
    """Settings a kit's own plugin sets from its options (``Settings.options``).

    Fill it in the kit plugin's ``pytest_configure``; stacks are made after every plugin
    was configured, so the values are there when a kit's factory reads them.
    """
    return config.stash.setdefault(OPTIONS_KEY, {})


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


#: Spares per spec per worker unless configured: none. The spares a worker holds are
#: bounded (:data:`DEFAULT_MAX_SPARES`), but every spec's first request still starts one,
#: wasted for a spec asked for once (most of envkit's own suite); the pool is for suites
#: that ask for the same spec again and again, which opt in with ``--envkit-pool 1``.
DEFAULT_POOL = 0


#: Spares a worker keeps across all specs unless configured. Most suites ask again and
#: again for one or two specs; two spares serve those, and bound what idle spares cost a
#: suite of many specs (each retired in the background when its room is wanted).
DEFAULT_MAX_SPARES = 2


def pool_size(config: pytest.Config) -> int:
    """``--envkit-pool``, else ini ``envkit_pool``, else :data:`DEFAULT_POOL`.

    :raises pytest.UsageError: for a value that is not a whole number >= 0.
    """
    return _spares(config, "envkit_pool", DEFAULT_POOL, "0 turns the warm pool off")


def pool_max_spares(config: pytest.Config) -> int:
    """``--envkit-pool-max-spares``, else its ini, else :data:`DEFAULT_MAX_SPARES`.

    :raises pytest.UsageError: for a value that is not a whole number >= 0.
    """
    return _spares(config, "envkit_pool_max_spares", DEFAULT_MAX_SPARES,
                   "0 keeps no spare at all")


def _spares(config: pytest.Config, name: str, default: int, zero: str) -> int:
    """A count of spares from option *name*, else its ini, else *default*."""
    raw = config.getoption(name)
    where = "--" + name.replace("_", "-")
    if raw is None:
        raw, where = ini(config, name), f"ini {name}"
    if raw is None or raw == "":
        return default
    try:
        size = int(raw)
    except ValueError:
        size = -1
    if size < 0:
        raise pytest.UsageError(f"envkit: {where} is {raw!r}: not a number of spares; "
                                f"give a whole number >= 0 ({zero})")
    return size


def ini(config: pytest.Config, name: str) -> Any:
    """An ini value, or ``None`` where the config has no such ini (a test's stand-in)."""
    try:
        return config.getini(name)
    except (ValueError, AttributeError):
        return None


def session_id(config: pytest.Config, settings: Settings) -> str:
    """The run's id: ``ENVKIT_SESSION`` whole, else xdist's testrunuid (first 12 chars).

    The controller picks it and hands it to workers as xdist's ``testrunuid``, so every
    process of the run labels its resources alike.
    """
    if settings.session is not None:
        chosen: str | None = settings.session
    elif is_worker(config):
        chosen = sanitize_ident(config.workerinput["testrunuid"], limit=12)  # type: ignore[attr-defined]
    else:
        uid = getattr(config.option, "testrunuid", None)
        chosen = sanitize_ident(uid, limit=12) if uid else None
    session = chosen or new_session_id()
    # With ENVKIT_SESSION every worker reads it itself, and xdist keeps a random run id
    # of its own (several runs may share a session; each run sweeps once).
    if settings.session is None and getattr(config.option, "testrunuid", "") is None:
        config.option.testrunuid = session
    return session


def resolve_settings(config: pytest.Config) -> Settings:
    """Settings from the environment, the ini file and the command line.

    :raises pytest.UsageError: for an unusable value, with envkit's fix.
    """
    root = Path(str(config.rootpath))
    try:
        settings = Settings.from_env(os.environ, root=root)
    except EnvkitError as exc:
        raise pytest.UsageError(f"envkit: {exc}") from None
    changes: dict[str, Any] = {}
    # The command line, then ENVKIT_STACK, then the ini file, as pytest ranks its own.
    if config.getoption("envkit_stack"):
        changes["stack"] = config.getoption("envkit_stack")
    elif config.getini("envkit_stack") and not os.environ.get("ENVKIT_STACK"):
        changes["stack"] = config.getini("envkit_stack")
    if config.getini("envkit_kits"):
        changes["kits"] = (*settings.kits, *config.getini("envkit_kits"))
    if config.getini("envkit_project") and not os.environ.get("ENVKIT_PROJECT"):
        changes["project"] = sanitize_ident(config.getini("envkit_project"), limit=40)
    if config.getini("envkit_base_packages"):
        changes["base_packages"] = (*settings.base_packages,
                                    *config.getini("envkit_base_packages"))
    if config.getoption("envkit_ready_timeout"):
        changes["ready_timeout"] = config.getoption("envkit_ready_timeout")
    return replace(settings, **changes)
