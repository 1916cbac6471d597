"""Membership rounds (controller/membership.py): every cluster.RENEW s, and at once when the
app says a hypervisor appeared (a new hypervisor has no owner, so gets no flows, until a round)."""
from __future__ import annotations

import threading
import time

from controller import cluster
from controller.membership import Membership


class _Nb:
    connected = threading.Event()


def _wait(cond, what: str, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        assert time.monotonic() < end, f"no {what} within {deadline_s} s"
        time.sleep(0.01)


def test_a_nudge_runs_a_round_now_not_at_the_next_tick(monkeypatch):
    monkeypatch.setattr(cluster, "RENEW", 3600.0)          # the tick alone would come in an hour
    members = Membership("ctl1", "192.0.2.1", "http://192.0.2.1:8181", _Nb(), lambda leases: None)
    rounds = []
    monkeypatch.setattr(members, "round", lambda names: rounds.append(list(names)))
    names = ["hv1"]
    members.start(lambda: list(names), lambda: True)
    _wait(lambda: len(rounds) == 1, "first round")
    names.append("hv2")
    members.nudge()
    _wait(lambda: len(rounds) == 2, "round after the nudge")
    assert rounds == [["hv1"], ["hv1", "hv2"]]
