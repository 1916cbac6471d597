"""The distributed router on the real lab: routed at the first hop, no hairpin."""
from __future__ import annotations

import re

import pytest

from mininet_topos.capture import ARP_ON_UNDERLAY, ICMP_IN_VXLAN, Capture
from mininet_topos.checks import ping, pingall, routing, underlay_macs

pytestmark = pytest.mark.root


def test_seed_every_vm_reaches_every_vm_across_the_router(seed_lab):
    result = pingall(seed_lab)
    assert result["ok"], result["failures"]
    assert result["must_reach"] == 12


def test_seed_routed_paths_use_the_underlay_only_across_hosts(seed_lab):
    result = routing(seed_lab)
    assert result["ok"], result
    assert result["same_host"]["underlay_packets"] == 0                  # vm1 -> vm4, both on hv1
    assert result["cross_host"]["underlay_packets"] == 2                 # vm1 -> vm3: one crossing each way
    assert result["cross_host"]["ttl_at_receiver"] == 63
    assert result["cross_host"]["traceroute"] == ["10.1.1.1", "10.1.2.13"]
    assert result["gateway"]["underlay_packets"] == 0


def test_seed_routed_packet_crosses_the_tunnel_with_the_destination_vni(seed_lab):
    with Capture(ICMP_IN_VXLAN) as cap:
        assert ping(seed_lab.vm("vm1"), "10.1.2.13") == 1
    vnis = re.findall(r"vni (\d+)", cap.text)
    assert vnis == ["5002", "5001"]          # request on app's VNI to hv2, reply on web's back


def test_gateway_arp_is_answered_by_the_local_hypervisor_with_the_vmac(seed_lab):
    vm = seed_lab.vm("vm3")
    vm.cmd("ip neigh flush all")
    with Capture(ARP_ON_UNDERLAY) as cap:
        assert ping(vm, "10.1.2.1") == 1
    assert cap.count == 0
    assert "02:50:56:56:44:52" in vm.cmd("ip neigh show 10.1.2.1")


def test_unknown_host_gets_host_unreachable_from_the_router(seed_lab):
    out = seed_lab.vm("vm1").cmd("ping -n -c1 -W3 10.1.2.99")
    assert "From 10.1.1.1" in out and "Destination Host Unreachable" in out


def test_no_route_gets_net_unreachable(seed_lab):
    out = seed_lab.vm("vm1").cmd("ping -n -c1 -W3 10.200.0.1")
    assert "From 10.1.1.1" in out and "Destination Net Unreachable" in out


def test_overlay_underlay_learns_only_vtep_macs(seed_lab):
    result = underlay_macs(seed_lab)
    assert result["vm_macs_seen"] == 0
    assert sum("VTEP" in v for v in result["mac_table"].values()) == 2
