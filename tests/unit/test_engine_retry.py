"""Transient engine errors are retried a bounded number of times; others are not."""

from __future__ import annotations

import docker.errors
import pytest
import requests

from envkit import EngineError
from envkit._engine import call, is_transient, remove


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "x"
        self.url = "http://docker/x"

    def json(self) -> dict[str, str]:
        return {"message": "boom"}


def api_error(status: int, text: str = "boom") -> docker.errors.APIError:
    return docker.errors.APIError(text, response=_Response(status), explanation=text)  # type: ignore[arg-type]


@pytest.mark.parametrize(("exc", "transient"), [
    (requests.exceptions.ConnectionError("reset"), True),
    (api_error(500), True),
    (api_error(503), True),
    (api_error(409, "conflict"), False),
    (api_error(404), False),
    (ValueError("x"), False),
])
def test_transient_classification(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_transient_errors_are_retried_then_succeed() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise api_error(500)
        return "ok"

    assert call("create network n", flaky, attempts=4) == "ok"
    assert len(attempts) == 3


def test_retries_are_bounded_and_the_error_says_what_failed() -> None:
    attempts: list[int] = []

    def always() -> None:
        attempts.append(1)
        raise api_error(500, "daemon hiccup")

    with pytest.raises(EngineError, match="Docker refused to create network n"):
        call("create network n", always, attempts=3)
    assert len(attempts) == 3


def test_permanent_errors_are_not_retried() -> None:
    attempts: list[int] = []

    def conflict() -> None:
        attempts.append(1)
        raise api_error(409, "name in use")

    with pytest.raises(EngineError):
        call("create container c", conflict)
    assert len(attempts) == 1


def test_network_not_found_race_is_retried_only_when_asked() -> None:
    attempts: list[int] = []

    def racing() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise docker.errors.NotFound("network envkit-x not found")
        return "ok"

    assert call("start c", racing, network_race=True) == "ok"


def test_removing_what_is_already_gone_succeeds() -> None:
    def gone() -> None:
        raise docker.errors.NotFound("no such container")

    def in_progress() -> None:
        raise api_error(409, "removal of container x is already in progress")

    remove("remove container x", gone)
    remove("remove container x", in_progress)
