"""Configuration: YAML file plus ``MTX_*`` environment, validated like upstream.

Why: a stack configures MediaMTX through ``/mediamtx.yml`` and ``MTX_*`` variables, and
camera services change paths at run time through the config API. The stand-in keeps the
same model as upstream: global values, ``pathDefaults``, and ``paths`` whose entries only
hold the values that were set explicitly (merged over the defaults when read).
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .defaults import GLOBAL_DEFAULTS, PATH_DEFAULTS, path_key_accepted

ALL_ALIASES = ("all", "all_others", "~^.*$")
_RE_PATH_NAME = re.compile(r"^[0-9a-zA-Z_\-/\.~:]+$")
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
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfError(f"json: cannot unmarshal {type(value).__name__} into field '{key}'")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfError(f"json: cannot unmarshal {type(value).__name__} into field '{key}'")
        if default and _DURATION_PART.fullmatch(default) and value:
            parse_duration(value)
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfError(f"json: cannot unmarshal {type(value).__name__} into field '{key}'")
        return value
    return value


def _env_value(raw: str, default: Any) -> Any:
    """Parse an environment string the way upstream's env loader does for that type."""
    if isinstance(default, bool):
        return raw.lower() in ("yes", "true", "1")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, list):
        return [p for p in raw.split(",") if p] if not raw.startswith("[") else yaml.safe_load(raw)
    return raw


def check_path_name(name: str) -> None:
    """Refuse names upstream refuses (regex names start with ``~``)."""
    if name.startswith("~"):
        try:
            re.compile(name[1:])
        except re.error as exc:
            raise ConfError(f"invalid regular expression: {name[1:]}") from exc
        return
    if not name:
        raise ConfError("invalid path name: cannot be empty")
    if name.startswith("/") or name.endswith("/"):
        raise ConfError(f"invalid path name: can't begin or end with a slash ({name})")
    if not _RE_PATH_NAME.match(name):
        raise ConfError(
            "invalid path name: can contain only alphanumeric characters, underscore, "
            f"dot, tilde, minus, slash, colon ({name})"
        )


def check_optional_path(values: dict[str, Any]) -> dict[str, Any]:
    """Validate a partial path configuration (YAML entry or API body)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not path_key_accepted(key):
            raise ConfError(f'json: unknown field "{key}"')
        if key == "name":
            continue
        out[key] = _coerce(key, value, PATH_DEFAULTS.get(key))
    source = out.get("source", "publisher")
    if not isinstance(source, str):
        raise ConfError("invalid source")
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
        if sum(1 for n in self.paths if n in ALL_ALIASES) > 1:
            raise ConfError("all_others, all and '~^.*$' are aliases")
        for name, values in self.paths.items():
            check_path_name(name)
            if (name.startswith("~") or name in ALL_ALIASES) and values.get("runOnInit"):
                raise ConfError(
                    "a path with a regular expression (or path 'all') does not support "
                    "option 'runOnInit'; use another path"
                )
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
            conf.path_defaults[key] = _env_value(raw, PATH_DEFAULTS[key])
        elif rest.startswith("PATHS_"):
            tail = rest[6:]
            for upper_key in sorted(upper_path, key=len, reverse=True):
                if tail.endswith("_" + upper_key):
                    env_name = tail[: -len(upper_key) - 1]
                    name = next(
                        (n for n in conf.paths if n.upper() == env_name), env_name.lower()
                    )
                    key = upper_path[upper_key]
                    conf.paths.setdefault(name, {})[key] = _env_value(raw, PATH_DEFAULTS[key])
                    break
        elif rest in upper_global:
            key = upper_global[rest]
            conf.global_values[key] = _env_value(raw, GLOBAL_DEFAULTS[key])


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
                data = yaml.safe_load(fh) or {}
            if not isinstance(data, dict):
                raise ConfError(f"{candidate}: not a mapping")
            _apply_global(conf, data)
            loaded = candidate
            break
    _apply_env(conf, dict(os.environ if environ is None else environ))
    conf.validate()
    return conf, loaded
