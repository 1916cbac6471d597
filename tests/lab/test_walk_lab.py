"""The packet walk on the real lab: derived from the flows, so it follows them."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from packetwalk.trace import RunningLab, walk

pytestmark = pytest.mark.root
PACKETWALK = [sys.executable, "-m", "packetwalk.cli"]


def cookies_on(lab, hv: str) -> set[str]:
    return set(re.findall(r"cookie=(0x[0-9a-f]+),", lab.hv(hv).ovs.sh("ovs-ofctl -O OpenFlow13 dump-flows br-int")))


def test_routed_walk_names_the_flows_that_dump_flows_shows(seed_lab):
    w = walk(RunningLab(seed_lab.rundir), "vm1", "vm3")
    assert w.delivered and w.verdict == "delivered to vm3 on hv2"
    named = [(s.where, s.cookie) for s in w.steps if s.cookie]
    assert {where for where, _ in named} == {"hv1", "hv2"}
    for where, cookie in named:
        assert cookie in cookies_on(seed_lab, where)
    texts = " ".join(s.text for s in w.steps)
    assert "router dlr1 takes it, on hv1 itself" in texts
    assert "TTL 64 -> 63" in texts and "VNI 5002, to VTEP 192.168.50.2" in texts
    assert "it never sees vm1's MAC" in texts
    assert w.path == ["vm1", "dlr1@hv1", "hv1", "underlay", "hv2", "vm3"]


def test_arp_walk_is_answered_at_the_hypervisor(seed_lab):
    w = walk(RunningLab(seed_lab.rundir), "vm1", "vm2", "arp")
    assert w.verdict.startswith("answered by hv1 (ARP suppression)")
    assert w.steps[-1].owner == "binding:5001/10.1.1.12"


def test_the_walk_follows_the_flows_when_a_vm_moves(seed_lab):
    seed_lab.move_vm("vm3", "hv1")
    try:
        from mininet_topos.lab import wait_for
        wait_for(lambda: walk(RunningLab(seed_lab.rundir), "vm1", "vm3").verdict.startswith("delivered to vm3 on hv1"),
                 10, "the walk to follow vm3 to hv1")
        w = walk(RunningLab(seed_lab.rundir), "vm1", "vm3")
        assert "underlay" not in w.path and w.verdict.endswith("nothing crossed the underlay")
    finally:
        seed_lab.move_vm("vm3", "hv2")


def test_trace_cli_prints_numbered_steps_and_json(seed_lab):
    text = subprocess.run(PACKETWALK + ["trace", "vm1", "vm4"], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert re.search(r"^ 1\. vm1 sends an ICMP echo request to 10\.1\.2\.14", text.stdout, re.M)
    assert "Verdict: delivered to vm4 on hv1; nothing crossed the underlay" in text.stdout
    js = json.loads(subprocess.run(PACKETWALK + ["trace", "vm1", "vm2", "--json"], capture_output=True,
                                   text=True, timeout=60).stdout)
    assert js["delivered"] and [s["n"] for s in js["steps"]] == list(range(1, len(js["steps"]) + 1))


def test_trace_cli_bad_input(seed_lab):
    r = subprocess.run(PACKETWALK + ["trace", "vm1", "nosuch"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "unknown VM 'nosuch'" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(PACKETWALK + ["trace", "vm1", "vm2", "--proto", "udp:99999"], capture_output=True, text=True)
    assert r.returncode == 1 and "PORT 1-65535" in r.stderr


def test_diagram_of_a_walk_is_a_png(seed_lab, tmp_path):
    out = tmp_path / "walk.png"
    r = subprocess.run(PACKETWALK + ["diagram", "--walk", "vm1", "vm3", "-o", str(out)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
