"""schemathesis against the MediaMTX stand-in, driven by upstream's OpenAPI document.

Issue 14, part 4. Every operation of the v1.20.1 document (loaded as ``mediamtx_checks``
loads it, with its one documented correction) gets generated requests, sent to a
stand-in container in an envkit stack; each answer must pass three checks: no 5xx,
the body conforms to the response schema, and the status code is documented.

Where upstream v1.20.1 itself would fail a check (the document is not exact), the test
encodes upstream's behaviour, not the stand-in's: see ``UPSTREAM``. Request bodies that
would take the server away from the test (switching the API off, moving it, closing it
to our address) or make it run generated shell commands (``runOn*`` hooks) are trimmed
before they are sent: upstream would obey them too, and nothing would be left to test.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import mediamtx_checks as mc
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (  # type: ignore[attr-defined]
    FailureGroup,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from envkit import Http, ServiceSpec, Stack, StackSpec
from envkit.camera.mediamtx import STANDIN

#: Generated requests per operation: 49 operations x 6 stays well under a minute.
EXAMPLES_PER_OPERATION = 6
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]

#: Global keys a generated patch must not carry: each would cut the test off the API.
UNSAFE_GLOBAL = re.compile(r"^(api|auth|pprof|metrics|playback|rtsp|rtmp|srt|hls|webrtc|moq)"
                           r"|Address$|^runOn|^log(Destinations|File)$")
UNSAFE_PATH = re.compile(r"^runOn")

#: Where upstream v1.20.1 answers outside its own document. Its internal/api/api.go
#: registers a server's routes only while that server runs, so with RTMP, SRT and the
#: TLS variants off (as in envkit's mediamtx.yml) their list, get and kick routes fall
#: through to gin's plain-text ``404 page not found``, a status the document does not
#: list for the list routes. Such an answer passes only with exactly that body.
DISABLED_SERVERS = ("/v3/rtmpconns/", "/v3/rtmpsconns/", "/v3/rtspsconns/",
                    "/v3/rtspssessions/", "/v3/srtconns/")
GIN_404 = "404 page not found"


def upstream_answers_so(template: str, status: int, body: str) -> bool:
    """Whether upstream v1.20.1 gives this undocumented answer too (see DISABLED_SERVERS)."""
    return status == 404 and body == GIN_404 and template.startswith(DISABLED_SERVERS)


def _spec() -> dict[str, Any]:
    for candidate in mc.SPEC_CANDIDATES:
        if candidate.exists():
            loaded = yaml.safe_load(candidate.read_text(encoding="utf-8"))
            return dict(mc._nullable_refs(loaded))  # the checks' one correction
    raise FileNotFoundError("mediamtx-openapi-v1.20.1.yaml")


def _trim(body: Any, unsafe: re.Pattern[str]) -> Any:
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if not unsafe.search(k)}
    return body


def _safe(case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    path = case.operation.path
    if path == "/v3/config/global/patch":
        case.body = _trim(case.body, UNSAFE_GLOBAL)
    elif path.startswith("/v3/config/"):
        case.body = _trim(case.body, UNSAFE_PATH)
    return case


@pytest.fixture
def standin(envkit_stack_factory: Any) -> Stack:
    service = ServiceSpec(name="mediamtx", image=STANDIN, ports=[8554, 9997],
                          ready=[Http(9997, "/v3/info")])
    stack: Stack = envkit_stack_factory(StackSpec(name="mtxfuzz", services=[service]))
    return stack


class Tally:
    """What the run sent and saw: statuses per operation, first failure per answer kind."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.statuses: Counter[str] = Counter()
        self.failures: dict[str, str] = {}
        self.upstream: Counter[str] = Counter()

    def fuzz(self, operation: Any) -> None:
        """Send EXAMPLES_PER_OPERATION generated requests of *operation* and check each."""

        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None,
                  deadline=None, suppress_health_check=list(HealthCheck))
        @given(operation.as_strategy())
        def one(case: schemathesis.Case[Any]) -> None:
            self.send(operation.path, _safe(case))

        one()

    def send(self, template: str, case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=self.base, session=self.http, timeout=10)
        key = (case.method.upper(), template, response.status_code)
        self.statuses[f"{key[0]} {key[1]} {key[2]}"] += 1
        if upstream_answers_so(template, response.status_code, response.text):
            self.upstream[key[1]] += 1
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:
            lines = " | ".join(str(exc).strip().splitlines()[:6])[:500]
            self.failures.setdefault(
                f"{key[0]} {key[1]} -> {key[2]}",
                f"{lines}; body={response.text[:200]!r} sent={case.body!r:.200} "
                f"path={case.path_parameters} query={case.query}")


def test_schemathesis_finds_no_5xx_no_schema_violation_no_undocumented_status(
    standin: Stack,
) -> None:
    tally = Tally(standin.url("mediamtx", 9997))
    for result in schemathesis.openapi.from_dict(_spec()).get_all_operations():
        tally.fuzz(result.ok())  # type: ignore[union-attr]
    sent = sum(tally.statuses.values())
    print(f"schemathesis: {sent} requests, {len(tally.statuses)} (operation, status) pairs")
    for key, count in sorted(tally.statuses.items()):
        print(f"  {count:4d}  {key}")
    print(f"passed as upstream's own undocumented 404: {sum(tally.upstream.values())} "
          f"answers on {len(tally.upstream)} routes")
    assert set(tally.upstream) == {op for op in tally.upstream if op.startswith(DISABLED_SERVERS)}
    assert mc.api_call(tally.base, "GET", "/v3/info").status == 200, "the API went away"
    assert not tally.failures, "\n".join(f"{k}: {v}" for k, v in sorted(tally.failures.items()))
