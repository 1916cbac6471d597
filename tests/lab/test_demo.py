"""`packetwalk demo --json`: the main job, every check true, nothing left running."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


def test_demo_passes_every_check(tmp_path):
    run = subprocess.run([sys.executable, "-m", "packetwalk.cli", "demo", "--json", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["ok"] is True
    overlay, physical = result["overlay"], result["physical"]
    assert all(c["ok"] for c in overlay["checks"].values())
    assert overlay["checks"]["routing"]["same_host"]["underlay_packets"] == 0
    assert physical["checks"]["routing"]["same_host"]["underlay_packets"] > 0        # the hairpin
    assert overlay["checks"]["underlay-macs"]["vm_macs_seen"] == 0
    assert physical["checks"]["underlay-macs"]["vm_macs_seen"] == 4
    assert all(w["delivered"] and w["steps_match_flows"] for w in overlay["walks"])
    assert len(list(tmp_path.glob("*.svg"))) == 8
