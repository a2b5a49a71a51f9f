"""Configuration from ``CAMERA_SERVICE_<SECTION>_<KEY>`` environment variables.

Everything is read once at start-up into a frozen dataclass so that the rest of
the service never touches ``os.environ`` and tests can build a ``Config`` directly.
The JWT secret has no default on purpose: a test stack with a guessable built-in
secret would hide mis-wiring, so a missing secret is a start-up error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "CAMERA_SERVICE_"


class ConfigError(Exception):
    """Raised when the environment does not describe a usable configuration."""


@dataclass(frozen=True)
class Config:
    """All settings of the service; see images/camera-service/README.md."""

    jwt_secret: str
    server_host: str = "0.0.0.0"
    server_port: int = 8002
    server_path: str = "/ws"
    rate_limit: float = 100.0
    rate_burst: int = 300
    health_host: str = "0.0.0.0"
    health_port: int = 8003
    ready_requires_mediamtx: bool = False
    mediamtx_host: str = "mediamtx"
    mediamtx_api_port: int = 9997
    mediamtx_rtsp_port: int = 8554
    mediamtx_hls_port: int = 8888
    mediamtx_webrtc_port: int = 8889
    mediamtx_poll_interval: float = 1.0
    device_glob: str = "/dev/video*"
    poll_interval: float = 1.0
    synthetic: tuple[int, ...] = ()
    synthetic_dir: str = "/run/camera-service/synthetic"
    resolution: str = "640x480"
    fps: int = 15
    input_format: str = ""
    snapshots_dir: str = "/var/lib/camera-service/snapshots"
    recordings_dir: str = "/var/lib/camera-service/recordings"
    ffmpeg: str = "ffmpeg"
    log_level: str = "INFO"

    @property
    def mediamtx_api_url(self) -> str:
        """Base URL of the MediaMTX Control API."""
        return f"http://{self.mediamtx_host}:{self.mediamtx_api_port}"

    def rtsp_url(self, path: str) -> str:
        """RTSP URL of a MediaMTX path, used by publishers, snapshots and clients."""
        return f"rtsp://{self.mediamtx_host}:{self.mediamtx_rtsp_port}/{path}"

    def stream_urls(self, path: str) -> dict[str, str]:
        """The ``streams`` object of the camera contract."""
        host = self.mediamtx_host
        return {
            "rtsp": self.rtsp_url(path),
            "hls": f"http://{host}:{self.mediamtx_hls_port}/{path}",
            "webrtc": f"http://{host}:{self.mediamtx_webrtc_port}/{path}",
        }


def parse_synthetic(value: str) -> tuple[int, ...]:
    """Parse ``CAMERA_SERVICE_CAMERAS_SYNTHETIC``.

    ``"2"`` means two cameras with indexes 0 and 1; ``"0"`` or empty means none;
    a comma list such as ``"video0,video10"``, ``"/dev/video3"`` or ``"0,10"``
    names the indexes explicitly.  A bare number is a count (not an index) because
    "how many fake cameras" is the common question; a single index needs a
    ``videoN`` spelling or a trailing comma (``"5,"``).
    """
    text = value.strip()
    if not text:
        return ()
    if text.isdigit():
        return tuple(range(int(text)))
    indexes: list[int] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        match = re.fullmatch(r"(?:/dev/)?(?:video)?(\d+)", item)
        if match is None:
            raise ConfigError(
                f"{PREFIX}CAMERAS_SYNTHETIC: {item!r} is not a count, an index or videoN"
            )
        index = int(match.group(1))
        if index not in indexes:
            indexes.append(index)
    return tuple(indexes)


def _get(env: Mapping[str, str], key: str, default: str) -> str:
    value = env.get(PREFIX + key)
    return default if value is None or value.strip() == "" else value.strip()


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = _get(env, key, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{key}={raw!r} is not an integer") from None


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = _get(env, key, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{key}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{PREFIX}{key}={raw!r} must be positive")
    return value


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = _get(env, key, "1" if default else "0").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{PREFIX}{key}={raw!r} is not a boolean")


def load(env: Mapping[str, str] | None = None) -> Config:
    """Build a ``Config`` from the environment; raises ``ConfigError`` on bad input."""
    env = os.environ if env is None else env
    secret = env.get(PREFIX + "JWT_SECRET", "")
    if not secret.strip():
        raise ConfigError(
            f"{PREFIX}JWT_SECRET is required (HS256 secret for client tokens); "
            "there is no built-in default"
        )
    resolution = _get(env, "CAMERAS_RESOLUTION", "640x480")
    if re.fullmatch(r"\d+x\d+", resolution) is None:
        raise ConfigError(f"{PREFIX}CAMERAS_RESOLUTION={resolution!r} is not WIDTHxHEIGHT")
    return Config(
        jwt_secret=secret,
        server_host=_get(env, "SERVER_HOST", "0.0.0.0"),
        server_port=_int(env, "SERVER_PORT", 8002),
        server_path=_get(env, "SERVER_PATH", "/ws"),
        rate_limit=_float(env, "SERVER_RATE_LIMIT", 100.0),
        rate_burst=_int(env, "SERVER_RATE_BURST", 300),
        health_host=_get(env, "HEALTH_HOST", "0.0.0.0"),
        health_port=_int(env, "HEALTH_PORT", 8003),
        ready_requires_mediamtx=_bool(env, "HEALTH_READY_REQUIRES_MEDIAMTX", False),
        mediamtx_host=_get(env, "MEDIAMTX_HOST", "mediamtx"),
        mediamtx_api_port=_int(env, "MEDIAMTX_API_PORT", 9997),
        mediamtx_rtsp_port=_int(env, "MEDIAMTX_RTSP_PORT", 8554),
        mediamtx_hls_port=_int(env, "MEDIAMTX_HLS_PORT", 8888),
        mediamtx_webrtc_port=_int(env, "MEDIAMTX_WEBRTC_PORT", 8889),
        mediamtx_poll_interval=_float(env, "MEDIAMTX_POLL_INTERVAL", 1.0),
        device_glob=_get(env, "CAMERAS_DEVICE_GLOB", "/dev/video*"),
        poll_interval=_float(env, "CAMERAS_POLL_INTERVAL", 1.0),
        synthetic=parse_synthetic(env.get(PREFIX + "CAMERAS_SYNTHETIC", "")),
        synthetic_dir=_get(env, "CAMERAS_SYNTHETIC_DIR", "/run/camera-service/synthetic"),
        resolution=resolution,
        fps=_int(env, "CAMERAS_FPS", 15),
        input_format=_get(env, "CAMERAS_INPUT_FORMAT", ""),
        snapshots_dir=_get(env, "STORAGE_SNAPSHOTS_DIR", "/var/lib/camera-service/snapshots"),
        recordings_dir=_get(env, "STORAGE_RECORDINGS_DIR", "/var/lib/camera-service/recordings"),
        ffmpeg=_get(env, "FFMPEG_PATH", "ffmpeg"),
        log_level=_get(env, "LOGGING_LEVEL", "INFO").upper(),
    )
