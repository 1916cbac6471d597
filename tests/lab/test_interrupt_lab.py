"""SIGINT / SIGTERM at any moment of `packetwalk lab`: nothing left behind, no traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from mininet_topos import cleanup

pytestmark = pytest.mark.root
PACKETWALK = [sys.executable, "-m", "packetwalk.cli"]


PF_KTHREAD = 0x00200000     # a kernel thread: in every mount namespace that is the host's


def our_processes() -> set[str]:
    """User processes in this mount namespace (the isolated lab's, or the host's when the suite
    runs unisolated as in CI) other than this one and its ancestors."""
    mine = os.readlink("/proc/self/ns/mnt")
    keep, pid = {1}, os.getpid()        # (pid 1: this run's own init when run in a pid namespace)
    while pid > 1:
        keep.add(pid)
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    found = set()
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(p) in keep or os.readlink(f"/proc/{p}/ns/mnt") != mine:
                continue
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()        # state ppid pgrp session tty tpgid flags
        if fields[0] != "Z" and not int(fields[6]) & PF_KTHREAD:
            found.add(f"{stat[stat.index('(') + 1:stat.rindex(')')]}[{p}]")
    return found


def interrupt_at(marker: str, signals: list[int], check: str = "underlay") -> dict:
    """Start a lab, send `signals` (0.3 s apart) once stderr shows `marker`; what it left."""
    before = our_processes()            # the host's own (unisolated runs): not the lab's
    proc = subprocess.Popen(PACKETWALK + ["lab", "--test", check], stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if marker in line:
            break
    for i, s in enumerate(signals):
        if i:
            time.sleep(0.3)    # the second signal must land while the first is being handled
        proc.send_signal(s)
    err = "".join(lines) + proc.stderr.read()
    rc = proc.wait(60)
    return {"rc": rc, "stderr": err, "namespaces": cleanup.our_netns(), "links": cleanup.our_links(),
            "processes": sorted(our_processes() - before)}


@pytest.mark.parametrize("marker,signals,rc", [
    ("waiting for the controller", [signal.SIGTERM], 143),           # mid start-up
    ("running checks", [signal.SIGINT, signal.SIGINT], 130),          # mid checks, then mid stop
])
def test_a_signal_leaves_nothing_behind(marker, signals, rc):
    left = interrupt_at(marker, signals)
    assert marker in left["stderr"]
    assert "Traceback" not in left["stderr"], left["stderr"]
    assert left["rc"] == rc and "nothing is left running" in left["stderr"]
    assert left["namespaces"] == [] and left["links"] == [] and left["processes"] == []
