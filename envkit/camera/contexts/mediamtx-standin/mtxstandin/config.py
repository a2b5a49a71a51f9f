"""Configuration: YAML file plus ``MTX_*`` environment, validated like upstream.

Why: a stack configures MediaMTX through ``/mediamtx.yml`` and ``MTX_*`` variables, and
camera services change paths at run time through the config API. The stand-in keeps the
same model as upstream: global values, ``pathDefaults``, and ``paths`` whose entries only
hold the values that were set explicitly (merged over the defaults when read).
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from . import gofmt
from .defaults import (
    DURATION_KEYS,
    GLOBAL_DEFAULTS,
    NUMBER_KEYS,
    PATH_DEFAULTS,
    path_key_accepted,
)

ALL_ALIASES = ("all", "all_others", "~^.*$")
_RE_PATH_NAME = re.compile(r"^[0-9a-zA-Z_\-/\.]+$")
LOG_LEVELS = ("error", "warn", "info", "debug")
# Sources upstream v1.20 accepts: fixed words, and URL schemes it can pull from.
_SOURCE_WORDS = ("publisher", "redirect", "rpiCamera")
_SOURCE_SCHEMES = (
    "rtsp://", "rtsps://", "rtsp+http://", "rtsps+http://", "rtsp+ws://", "rtsps+ws://",
    "rtmp://", "rtmps://", "http://", "https://", "udp://", "udp+mpegts://",
    "unix+mpegts://", "udp+rtp://", "unix+rtp://", "srt://", "whep://", "wheps://",
    "moq://", "moqs://",
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
    "d": 86400.0,
}


class ConfError(ValueError):
    """A configuration value or request body upstream would refuse (API answers 400)."""


def parse_duration(value: str | float | int) -> float:
    """Turn a Go-style duration (``10s``, ``1m30s``, ``500ms``, ``1d``) into seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ConfError(f"invalid duration: {value}")
    return total


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default``, as upstream's JSON decoding does."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfError(f"json: cannot unmarshal {type(value).__name__} into field '{key}'")
        return value
    if isinstance(default, int):
        if key in NUMBER_KEYS and isinstance(value, float):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfError(f"json: cannot unmarshal {type(value).__name__} into field '{key}'")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfError(f"json: cannot unmarshal {type(value).__name__} into field '{key}'")
        if key in DURATION_KEYS:
            # Stored as upstream stores it: a duration, rendered back as Go does.
            return gofmt.duration(parse_duration(value))
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfError(f"json: cannot unmarshal {type(value).__name__} into field '{key}'")
        return value
    return value


def coerce_global(key: str, value: Any) -> Any:
    """Check and normalize one global value (API body or YAML)."""
    return _coerce(key, value, GLOBAL_DEFAULTS[key])


def _env_value(key: str, raw: str, default: Any) -> Any:
    """Parse an environment string the way upstream's env loader does for that type."""
    if key in DURATION_KEYS:
        return gofmt.duration(parse_duration(raw))
    if isinstance(default, bool):
        return raw.lower() in ("yes", "true", "1")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, list):
        return [p for p in raw.split(",") if p] if not raw.startswith("[") else _yaml(raw)
    return raw


def path_name_problem(name: str) -> str | None:
    """Why upstream refuses ``name`` as a path name, or ``None`` if it is valid."""
    if not name:
        return "cannot be empty"
    if name.startswith("/"):
        return "can't begin with a slash"
    if name.endswith("/"):
        return "can't end with a slash"
    if not _RE_PATH_NAME.match(name):
        return "can contain only alphanumeric characters, underscore, dot, minus, slash"
    return None


def check_path_name(name: str) -> None:
    """Refuse names upstream refuses (regex names start with ``~``)."""
    if name in ALL_ALIASES:
        return
    if name.startswith("~"):
        try:
            re.compile(name[1:])
        except re.error as exc:
            raise ConfError(f"invalid regular expression: {name[1:]}") from exc
        return
    problem = path_name_problem(name)
    if problem is not None:
        raise ConfError(f"invalid path name '{name}': {problem}")


def check_path_values(values: dict[str, Any], regex: bool) -> None:
    """Refuse what upstream's path validation refuses in a (merged) path configuration."""
    source = values.get("source", "publisher")
    if source not in ("publisher", "redirect") and regex and not values.get("sourceOnDemand"):
        raise ConfError("a path with a regular expression (or path 'all_others') and a static "
                        "source must have 'sourceOnDemand' set to true")
    if source not in _SOURCE_WORDS and not source.startswith(_SOURCE_SCHEMES):
        raise ConfError(f"invalid source: '{source}'")
    if values.get("sourceOnDemand") and source == "publisher":
        raise ConfError("'sourceOnDemand' is useless when source is 'publisher'")
    record_path = str(values.get("recordPath", ""))
    if "%path" not in record_path:
        raise ConfError("'recordPath' must contain %path")
    if "%s" not in record_path and not all(
            f"%{c}" in record_path for c in "YmdHMS"):
        raise ConfError("'recordPath' must contain either %s or %Y %m %d %H %M %S")
    if values.get("runOnInit") and regex:
        raise ConfError("a path with a regular expression (or path 'all_others') does not "
                        "support option 'runOnInit'; use another path")
    if (values.get("runOnDemand") or values.get("runOnUnDemand")) and source != "publisher":
        raise ConfError("'runOnDemand' and 'runOnUnDemand' can be used only when source is "
                        "'publisher'")


def check_optional_path(values: dict[str, Any]) -> dict[str, Any]:
    """Validate a partial path configuration (YAML entry or API body)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not path_key_accepted(key):
            raise ConfError(f'json: unknown field "{key}"')
        if key == "name":
            continue
        out[key] = _coerce(key, value, PATH_DEFAULTS.get(key))
    return out


@dataclass
class Conf:
    """The whole configuration; ``paths`` maps names to explicitly-set values only."""

    global_values: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(GLOBAL_DEFAULTS))
    path_defaults: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(PATH_DEFAULTS))
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignored_keys: list[str] = field(default_factory=list)

    def clone(self) -> Conf:
        """Deep copy, so API changes are validated before they replace the live conf."""
        return copy.deepcopy(self)

    def validate(self) -> None:
        """Refuse invalid combinations, like upstream's ``Conf.Validate``."""
        level = self.global_values.get("logLevel")
        if level not in LOG_LEVELS:
            raise ConfError(f"invalid log level: '{level}'")
        if sum(1 for n in self.paths if n in ALL_ALIASES) > 1:
            raise ConfError("all_others, all and '~^.*$' are aliases")
        check_path_values(self.path_defaults, regex=False)
        for name in self.paths:
            check_path_name(name)
            regex = name.startswith("~") or name in ALL_ALIASES
            check_path_values(self.path_conf(name), regex=regex)
        parse_duration(self.global_values["readTimeout"])

    def path_conf(self, conf_name: str) -> dict[str, Any]:
        """Full configuration of a configured path: defaults overlaid with its values."""
        merged = copy.deepcopy(self.path_defaults)
        merged.update(copy.deepcopy(self.paths[conf_name]))
        merged["name"] = conf_name
        return merged

    def find_path_conf(self, name: str) -> tuple[str, list[str]] | None:
        """Match a path name to a configuration: exact names first, then regexes (sorted)."""
        if name in self.paths and not name.startswith("~"):
            return name, [name]
        for conf_name in sorted(self.paths):
            pattern = "^.*$" if conf_name in ALL_ALIASES else (
                conf_name[1:] if conf_name.startswith("~") else None
            )
            if pattern is None:
                continue
            match = re.search(pattern, name)
            if match:
                return conf_name, [match.group(0), *[g or "" for g in match.groups()]]
        return None

    @property
    def rtsp_port(self) -> str:
        """Port part of ``rtspAddress`` (hooks get it as ``RTSP_PORT``)."""
        return str(self.global_values["rtspAddress"]).rsplit(":", 1)[-1]


def _normalize_users(users: list[Any]) -> list[dict[str, Any]]:
    """Fill ``authInternalUsers`` entries the way upstream reports them (no nulls)."""
    out = []
    for user in users:
        if not isinstance(user, dict):
            raise ConfError("invalid authInternalUsers entry")
        out.append({
            "user": str(user.get("user") or ""),
            "pass": str(user.get("pass") or ""),
            "ips": [str(i) for i in (user.get("ips") or [])],
            "permissions": [
                {"action": str(p.get("action") or ""), "path": str(p.get("path") or "")}
                for p in (user.get("permissions") or [])
            ],
        })
    return out


def _apply_global(conf: Conf, data: dict[str, Any]) -> None:
    # Measured on v1.20.1: a configuration file without this key yields [] (the
    # built-in api/metrics/pprof exclusions apply only when no file is read).
    if "authHTTPExclude" not in data:
        conf.global_values["authHTTPExclude"] = []
    for key, value in data.items():
        if key == "pathDefaults":
            conf.path_defaults.update(check_optional_path(value or {}))
        elif key == "paths":
            for name, values in (value or {}).items():
                conf.paths[str(name)] = check_optional_path(values or {})
        elif key == "authInternalUsers":
            conf.global_values[key] = _normalize_users(value or [])
        elif key in GLOBAL_DEFAULTS:
            conf.global_values[key] = _coerce(key, value, GLOBAL_DEFAULTS[key])
        else:
            # Deprecated or unknown keys: upstream rejects unknown ones; the stand-in
            # tolerates them (logged by the caller) to stay usable with newer configs.
            conf.ignored_keys.append(key)


def _apply_env(conf: Conf, environ: dict[str, str]) -> None:
    upper_global = {k.upper(): k for k in GLOBAL_DEFAULTS}
    upper_path = {k.upper(): k for k in PATH_DEFAULTS}
    for env_key, raw in sorted(environ.items()):
        if not env_key.startswith("MTX_"):
            continue
        rest = env_key[4:]
        if rest.startswith("PATHDEFAULTS_") and rest[13:] in upper_path:
            key = upper_path[rest[13:]]
            conf.path_defaults[key] = _env_value(key, raw, PATH_DEFAULTS[key])
        elif rest.startswith("PATHS_"):
            tail = rest[6:]
            for upper_key in sorted(upper_path, key=len, reverse=True):
                if tail.endswith("_" + upper_key):
                    env_name = tail[: -len(upper_key) - 1]
                    name = next(
                        (n for n in conf.paths if n.upper() == env_name), env_name.lower()
                    )
                    key = upper_path[upper_key]
                    conf.paths.setdefault(name, {})[key] = _env_value(key, raw, PATH_DEFAULTS[key])
                    break
        elif rest in upper_global:
            key = upper_global[rest]
            conf.global_values[key] = _env_value(key, raw, GLOBAL_DEFAULTS[key])


# The parse of the image's own /mediamtx.yml, written at build time (see write_cache).
CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mediamtx.yml.json")


def _yaml(text: str) -> Any:
    import yaml  # here, not at the top: importing it costs ~50 ms of start-up CPU

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def parse_file(text: str) -> Any:
    """A configuration file's data; the shipped file's is read from the build-time cache.

    Why: importing PyYAML is a large part of the stand-in's start-up, which issue 9
    bounds; a file that differs from the cached one in any byte is parsed as YAML.
    """
    try:
        with open(CACHE, encoding="utf-8") as fh:
            cached = json.load(fh)
        if isinstance(cached, dict) and cached.get("source") == text:
            return cached["data"]
    except (OSError, ValueError):
        pass
    return _yaml(text)


def write_cache(path: str) -> None:
    """Cache the parse of ``path`` (image build), if JSON keeps it exactly."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    data = _yaml(text)
    if json.loads(json.dumps(data)) == data:
        with open(CACHE, "w", encoding="utf-8") as fh:
            json.dump({"source": text, "data": data}, fh)


def load(path: str | None, environ: dict[str, str] | None = None) -> tuple[Conf, str]:
    """Load defaults, then the YAML file (if any), then ``MTX_*`` variables."""
    conf = Conf()
    candidates = [path] if path else ["mediamtx.yml", "/usr/local/etc/mediamtx.yml",
                                      "/usr/etc/mediamtx.yml", "/etc/mediamtx/mediamtx.yml",
                                      "/mediamtx.yml"]
    loaded = ""
    for candidate in candidates:
        if candidate and os.path.exists(candidate):
            with open(candidate, encoding="utf-8") as fh:
                data = parse_file(fh.read()) or {}
            if not isinstance(data, dict):
                raise ConfError(f"{candidate}: not a mapping")
            _apply_global(conf, data)
            loaded = candidate
            break
    _apply_env(conf, dict(os.environ if environ is None else environ))
    conf.validate()
    return conf, loaded
