"""A hypervisor's shell lines: what a node's shell is sent is short enough to reach it whole."""
from __future__ import annotations

import subprocess
from pathlib import Path

from dataplane.hypervisor import HypervisorOVS, VmPort


def hypervisor(rundir: Path) -> HypervisorOVS:
    return HypervisorOVS("hv1", rundir, None, 1, "192.168.50.1/24", "169.254.77.2", "tcp:169.254.77.1:6653")


def test_a_start_line_for_many_vms_fits_a_terminal_line_and_still_runs(tmp_path):
    ovs = hypervisor(tmp_path / "hv1")
    first, _ = ovs.start_scripts([VmPort(f"vm{i}", f"vm{i}", "00:50:56:00:00:01", "web", 5001) for i in range(32)])
    assert len(first) > 4095                                  # as such it would never reach the node's shell
    assert len(ovs.wrapped(first)) <= HypervisorOVS.LINE_MAX + 200
    long = "echo " + "x" * 5000 + " >/dev/null && echo done $OVS_RUNDIR"
    out = subprocess.run(["bash", "-c", ovs.wrapped(long)], capture_output=True, text=True).stdout
    assert ovs.checked(long, out).strip() == f"done {tmp_path / 'hv1'}"


def test_a_short_line_is_sent_as_it_is(tmp_path):
    ovs = hypervisor(tmp_path / "hv1")
    line = ovs.wrapped("echo hello")
    assert "echo hello" in line and not (tmp_path / "hv1").exists()
    assert ovs.checked("echo hello", subprocess.run(["bash", "-c", line], capture_output=True, text=True).stdout) \
        .strip() == "hello"
