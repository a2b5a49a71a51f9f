"""The sweep's decision as a pure function: labels + now + a liveness oracle -> verdict."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import pytest

from envkit import labels
from envkit.errors import EnvkitError
from envkit.reaper import Liveness, LocalProcesses, decide, older_than_from_env, parse_duration

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
HOST = "here"
NS = "boot-1/4026531836"


class FakeProcesses:
    """PID -> start time of the processes alive on HOST; records the questions asked."""

    def __init__(self, alive: Mapping[int, str]) -> None:
        self.alive = dict(alive)
        self.asked: list[int] = []

    def liveness(self, pid: int, start: str | None) -> Liveness:
        self.asked.append(pid)
        if pid not in self.alive:
            return Liveness.DEAD
        return Liveness.REUSED if start is not None and start != self.alive[pid] else Liveness.ALIVE


def stack_labels(*, owner: str = f"{HOST}:100", start: str | None = "5000",
                 age: timedelta = timedelta(minutes=5), detached: bool = False,
                 ns: str | None = NS) -> dict[str, str]:
    made = labels.Ownership(session="s1", worker="gw0", stack="s1-gw0-demo-1", owner=owner,
                            created=(NOW - age).isoformat(), detached=detached,
                            owner_start=start, owner_ns=ns)
    return made.stack_labels()


def judge(found: Mapping[str, str], older_than: timedelta | None = None,
          alive: Mapping[int, str] | None = None, ns: str | None = NS) -> tuple[bool, str]:
    verdict = decide(found, now=NOW, host=HOST, older_than=older_than, namespace=ns,
                     processes=FakeProcesses({100: "5000"} if alive is None else alive))
    return verdict.remove, verdict.reason


def test_live_owner_is_kept() -> None:
    assert judge(stack_labels()) == (False, "owner pid 100 is alive")


def test_dead_owner_is_removed() -> None:
    assert judge(stack_labels(), alive={}) == (True, "owner pid 100 is gone")


def test_reused_pid_is_removed() -> None:
    assert judge(stack_labels(), alive={100: "9999"})[0] is True


def test_without_start_label_a_live_pid_counts_as_owner() -> None:
    assert judge(stack_labels(start=None), alive={100: "9999"})[0] is False


def test_detached_is_kept_even_when_owner_is_dead() -> None:
    assert judge(stack_labels(detached=True), alive={}) == (False, "detached")


def test_other_host_is_kept_and_its_pid_never_checked() -> None:
    oracle = FakeProcesses({})
    verdict = decide(stack_labels(owner="elsewhere:100"), now=NOW, host=HOST, processes=oracle)
    assert (verdict.remove, oracle.asked) == (False, [])


@pytest.mark.parametrize("found", [
    stack_labels(), stack_labels(detached=True), stack_labels(owner="elsewhere:7"),
    stack_labels(ns="boot-2/4026532000"),
])
def test_age_limit_overrides_everything(found: dict[str, str]) -> None:
    assert judge(found, older_than=timedelta(minutes=5)) == (True, "older than 5m")
    assert judge(found, older_than=timedelta(minutes=6))[1] != "older than 6m"


def test_same_hostname_other_pid_namespace_is_kept_and_its_pid_never_checked() -> None:
    """A runner in a container sharing our hostname: its PIDs are not ours to look up."""
    oracle = FakeProcesses({})
    verdict = decide(stack_labels(ns="boot-1/4026532999"), now=NOW, host=HOST,
                     processes=oracle, namespace=NS)
    assert (verdict.remove, oracle.asked) == (False, [])
    assert "another PID namespace (boot-1/4026532999)" in verdict.reason


def test_same_namespace_after_a_reboot_is_another_namespace() -> None:
    assert judge(stack_labels(ns="boot-0/4026531836"), alive={})[0] is False


def test_without_namespace_label_hostname_decides_as_before() -> None:
    assert judge(stack_labels(ns=None), alive={}) == (True, "owner pid 100 is gone")
    assert judge(stack_labels(ns=None), alive={}, ns=None)[0] is True


def test_namespace_label_kept_when_ours_is_unknown() -> None:
    assert judge(stack_labels(), alive={}, ns=None)[0] is False


def test_owner_namespace_is_stamped_by_default() -> None:
    made = labels.Ownership(session="s", worker="w", stack="s-w-x", owner="h:1", created="t")
    assert made.owner_ns == labels.owner_namespace()
    if made.owner_ns is not None:  # Linux: "<boot id>/<pid namespace inode>"
        boot, _, inode = made.owner_ns.partition("/")
        assert len(boot) == 36 and inode.isdigit()
        assert made.stack_labels()[labels.OWNER_NS] == made.owner_ns
    assert labels.OWNER_NS not in stack_labels(ns=None)


@pytest.mark.parametrize("found", [
    {}, {"com.example": "x"}, {labels.STACK: "x"},
])
def test_unlabelled_resources_are_never_removed(found: dict[str, str]) -> None:
    assert judge(found, older_than=timedelta(0), alive={})[0] is False


@pytest.mark.parametrize("owner", ["", "nopid", f"{HOST}:abc"])
def test_unreadable_owner_is_kept(owner: str) -> None:
    assert judge(stack_labels(owner=owner), alive={}) == (False, "owner label unreadable")


def test_unreadable_created_ignores_age_limit() -> None:
    found = {**stack_labels(), labels.CREATED: "yesterday"}
    assert judge(found, older_than=timedelta(0))[0] is False


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("45", 45), ("1.5h", 5400),
    (" 0s ", 0),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "m", "10w", "-1s", "1h30m"])
def test_parse_duration_refuses_with_fix(text: str) -> None:
    with pytest.raises(EnvkitError, match="not a duration") as info:
        parse_duration(text)
    assert "30s, 10m, 2h or 1d" in info.value.fix


def test_older_than_from_env() -> None:
    assert older_than_from_env({}) is None
    assert older_than_from_env({"ENVKIT_GC_OLDER_THAN": "2h"}) == timedelta(hours=2)


def test_local_processes_tell_alive_dead_and_reused() -> None:
    table = LocalProcesses()
    me = os.getpid()
    assert table.liveness(me, labels.process_start(me)) is Liveness.ALIVE
    assert table.liveness(me, "1") is Liveness.REUSED
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert table.liveness(gone.pid, None) is Liveness.DEAD


def test_owner_start_is_stamped_only_when_known() -> None:
    with_start = stack_labels(start="42")
    assert with_start[labels.OWNER_START] == "42"
    assert labels.OWNER_START not in stack_labels(start=None)


def test_a_kept_stack_is_spared_when_its_owner_is_dead_until_the_age_limit() -> None:
    kept = {**stack_labels(), labels.KEPT: "true"}
    assert judge(kept, alive={}) == (False, "kept after a failed test (remove: envkit down)")
    assert judge(kept, alive={}, older_than=timedelta(minutes=1))[0] is True
