"""Trust nothing a VM sends, and nothing on the wire: one seed lab over TLS (`--ssl`), real
crafted frames, real captures. Each check's own figures are in its result."""
from __future__ import annotations

import re

import pytest

from mininet_topos.checks import CHECKS
from mininet_topos.lab import Lab
from mininet_topos.topology import load_topology
from tests.lab.conftest import TOPOLOGIES

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab():
    with Lab(load_topology(TOPOLOGIES / "seed.yaml"), ssl=True) as running:
        yield running


def test_every_channel_is_tls_and_strangers_are_refused(lab):
    r = CHECKS["tls"](lab)
    assert r["ok"], r
    assert r["cleartext_segments"] == {"openflow+ovsdb": 0} and r["segments_seen"]["openflow+ovsdb"] > 0
    assert r["intruders_accepted"] == [] and r["api"] == "loopback only"


def test_spoofed_frames_are_not_delivered_and_are_counted(lab):
    r = CHECKS["spoofing"](lab)
    assert r["ok"], r
    assert r["spoofed_frames_delivered"] == 0
    assert r["delivered"]["control: switched"] == r["delivered"]["control: routed"] == r["frames_per_case"]
    assert r["log_lines_about_it"] <= len(r["drop_counters"])       # once per cause, not per frame


def test_lying_arp_poisons_nobody(lab):
    r = CHECKS["arp-poisoning"](lab)
    assert r["ok"], r
    assert r["poisoned_entries"] == [] and r["lying_arp_delivered"] == 0 and r["controller_bindings_changed"] == []


def test_the_router_tells_the_truth_about_size(lab):
    vm1, vm3 = lab.vm("vm1"), lab.topo.vm("vm3")
    vm1.cmd("ip link set eth0 mtu 1500")          # a VM whose MTU is larger than the logical switch's
    try:
        vm1.cmd("ip route flush cache")
        df = vm1.cmd(f"ping -n -c 1 -W 2 -M do -s 1472 {vm3.ip}")
        assert re.search(r"From 10\.1\.1\.1 .*Frag needed and DF set \(mtu = 1450\)", df), df
        fragmented = vm1.cmd(f"ping -n -c 1 -W 2 -M dont -s 2800 {vm3.ip}")
        assert " 1 received" in fragmented, fragmented
    finally:
        vm1.cmd("ip link set eth0 mtu 1450; ip route flush cache")


def test_a_vm_that_moves_back_and_forth_loses_no_ping(lab):
    """20 live migrations while another VM pings it every 10 ms: not one ping lost (the
    switchover waits until the new port is up on the hypervisor's side: migration.py)."""
    r = CHECKS["vm-move"](lab)
    assert r["ok"], r
    assert r["moves"] == 20 and r["pings_lost"] == 0 and r["pings_sent"] > 0
