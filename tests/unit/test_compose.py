"""compose/: the default stack for local work keeps envkit's security defaults."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).parents[2] / "envkit" / "camera" / "compose" / "docker-compose.yml"


def test_every_service_has_no_new_privileges_init_and_loopback_ports() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == {"mediamtx", "camera-service"}
    for name, service in services.items():
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("init") is True, name
        assert not service.get("privileged"), name
        assert all(p.startswith("127.0.0.1::") for p in service["ports"]), name
