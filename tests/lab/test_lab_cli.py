"""`packetwalk lab` as a user runs it: one command, a JSON verdict, nothing left after."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mininet_topos.lab import wait_for

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]
PACKETWALK = [sys.executable, "-m", "packetwalk.cli"]


def test_seed_underlay_check_passes_as_json():
    run = subprocess.run(PACKETWALK + ["lab", "--topology", str(REPO / "mininet_topos/seed.yaml"),
                                       "--test", "underlay", "--json"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["ok"] is True
    hvs = result["checks"]["underlay"]["hypervisors"]
    assert set(hvs) == {"hv1", "hv2"} and all(h["openflow"] and h["ovsdb"] for h in hvs.values())
    assert result["checks"]["underlay"]["vtep_reachability"] == {"hv1->hv2": True, "hv2->hv1": True}


def test_lab_clean_removes_what_a_killed_lab_left(tmp_path):
    env = {**os.environ, "PACKETWALK_RUNDIR": str(tmp_path / "run")}
    lab = subprocess.Popen(PACKETWALK + ["lab", "--topology", str(REPO / "mininet_topos/seed.yaml")],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           start_new_session=True)
    try:
        wait_for(lambda: (tmp_path / "run" / "controller" / "state.json").exists() and
                 (tmp_path / "run" / "hv2" / "ovs-vswitchd.pid").exists(), 120,    # hv2's OVS comes last
                 "the lab to come up")
    finally:
        os.kill(lab.pid, signal.SIGKILL)          # a crash: no teardown at all
        lab.wait()
    clean = subprocess.run(PACKETWALK + ["lab", "clean"], capture_output=True, text=True, env=env, timeout=120)
    assert clean.returncode == 0, clean.stderr
    assert "deleted namespace pw-hv1" in clean.stdout and "stopped ovs-vswitchd" in clean.stdout
    assert "pw-" not in subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
    again = subprocess.run(PACKETWALK + ["lab", "clean"], capture_output=True, text=True, env=env, timeout=60)
    assert again.stdout.strip() == "nothing to clean"
