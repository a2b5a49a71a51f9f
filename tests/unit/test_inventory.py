"""Stacks read back from list endpoints: grouping, state, endpoints, and what is ignored."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from envkit import labels
from envkit.inventory import list_resources, list_stacks

CREATED = "2030-01-01T12:00:00+00:00"


def stamp(stack: str, **extra: str) -> dict[str, str]:
    return {labels.SESSION: "s1", labels.WORKER: "gw0", labels.STACK: stack,
            labels.OWNER: "h:1", labels.CREATED: CREATED, **extra}


class FakeApi:
    """Answers the three list endpoints like the engine, ignoring filters on purpose."""

    def __init__(self) -> None:
        self.filters: list[Any] = []

    def containers(self, *, all: bool, filters: Any) -> list[dict[str, Any]]:
        self.filters.append(filters)
        return [
            {"Names": ["/a-web"], "State": "running",
             "Labels": stamp("a", **{labels.SERVICE: "web", "user.label": "x"}),
             "Ports": [{"PrivatePort": 8080, "Type": "tcp", "IP": "127.0.0.1",
                        "PublicPort": 49153},
                       {"PrivatePort": 8080, "Type": "tcp", "IP": "::", "PublicPort": 49153},
                       {"PrivatePort": 9000, "Type": "tcp"}]},
            {"Names": ["/a-client"], "State": "exited",
             "Labels": stamp("a", **{labels.SERVICE: "client"}), "Ports": []},
            {"Names": ["/stranger"], "State": "running", "Labels": {"other": "1"}, "Ports": []},
        ]

    def networks(self, *, filters: Any) -> list[dict[str, Any]]:
        return [{"Name": "envkit-a", "Labels": stamp("a")},
                {"Name": "envkit-b", "Labels": stamp("b", **{labels.DETACHED: "true"})},
                {"Name": "bridge", "Labels": {}}]

    def volumes(self, *, filters: Any) -> dict[str, Any]:
        return {"Volumes": None}


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


def test_groups_resources_by_stack_and_skips_unlabelled() -> None:
    client = FakeClient()
    stacks = list_stacks(client)
    assert [s.stack for s in stacks] == ["a", "b"]
    a, b = stacks
    assert a.services == ("client", "web")
    assert a.networks == ("envkit-a",)
    assert a.state == "partial 1/2"
    assert a.endpoints == ("web 8080/tcp -> 127.0.0.1:49153",)
    assert "user.label" not in a.labels and labels.SERVICE not in a.labels
    assert (b.state, b.detached, a.detached) == ("no containers", True, False)
    assert client.api.filters == [labels.selector()]


def test_age_and_json_document() -> None:
    a = list_stacks(FakeClient())[0]
    now = datetime(2030, 1, 1, 12, 5, tzinfo=timezone.utc)
    assert a.age(now) == timedelta(minutes=5)
    doc = a.describe(now)
    assert (doc["age_seconds"], doc["owner"], doc["session"]) == (300, "h:1", "s1")
    assert doc["containers"][1]["endpoints"] == ["8080/tcp -> 127.0.0.1:49153"]


def test_resources_of_a_session_name_kind_and_name() -> None:
    client = FakeClient()
    assert list_resources(client, session="s1", worker="gw0") == [
        "container a-client", "container a-web", "network envkit-a", "network envkit-b"]
    assert client.api.filters == [labels.selector(session="s1", worker="gw0")]
