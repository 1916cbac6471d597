"""SIGINT / SIGTERM at any moment of `packetwalk lab`: nothing left behind, no traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mininet_topos import cleanup

pytestmark = pytest.mark.root
PACKETWALK = [sys.executable, "-m", "packetwalk.cli"]


def left_running(mark: bytes) -> list[str]:
    """Processes that carry `mark` in their environment: whatever the lab started, and what
    those started (environments are inherited, daemons' too), and nothing else on the host."""
    found = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{p}/environ").read_bytes().split(b"\0")
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        if mark in environ and stat[stat.rindex(")") + 2] != "Z":
            found.append(f"{stat[stat.index('(') + 1:stat.rindex(')')]}[{p}]")
    return found


def interrupt_at(marker: str, signals: list[int], check: str = "underlay") -> dict:
    """Start a lab, send `signals` (0.3 s apart) once stderr shows `marker`; what it left."""
    mark = f"PW_INTERRUPT_TEST={uuid.uuid4()}"
    proc = subprocess.Popen(PACKETWALK + ["lab", "--test", check], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **dict([mark.split("=")])})
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
            "processes": left_running(mark.encode())}


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
