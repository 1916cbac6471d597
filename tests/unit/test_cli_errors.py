"""The CLI's answers to a user's mistakes: clear, non-zero, nothing started."""
from __future__ import annotations

import subprocess
import sys

PACKETWALK = [sys.executable, "-m", "packetwalk.cli"]


def run(*args):
    return subprocess.run(PACKETWALK + list(args), capture_output=True, text=True, timeout=60)


def test_bad_topology_names_file_item_and_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nhypervisors: [{name: hv1}]\n"
                   "logical_switches: [{name: web, vni: 5001, subnet: 10.1.1.0/24}]\n"
                   "vms: [{name: vm1, hypervisor: hv9, switch: web, ip: 10.1.1.11}]\n")
    r = run("lab", "--topology", str(bad), "--test", "underlay")
    assert r.returncode == 2
    assert "bad.yaml: vms[0] 'vm1'" in r.stderr and "hv9" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_check_is_refused_before_anything_starts():
    r = run("lab", "--test", "underlay,nosuch")
    assert r.returncode == 2 and "unknown check nosuch" in r.stderr and "underlay" in r.stderr


def test_missing_topology_file():
    r = run("lab", "--topology", "/nonexistent/x.yaml", "--test", "underlay")
    assert r.returncode == 2 and "/nonexistent/x.yaml" in r.stderr and "Traceback" not in r.stderr


def test_trace_without_a_running_lab_says_so(tmp_path):
    from packetwalk.trace import RunningLab, WalkError
    import pytest
    with pytest.raises(WalkError, match="no lab is running"):
        RunningLab(tmp_path)
