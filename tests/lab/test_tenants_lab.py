"""Tenants: two routers with the same subnets; a static default route via an edge VM."""
from __future__ import annotations

import pytest

from mininet_topos.checks import ping, pingall

pytestmark = pytest.mark.root


def test_tenants_with_overlapping_subnets_never_leak(tenants_lab):
    result = pingall(tenants_lab)
    assert result["ok"], result["failures"]
    assert result["matrix"]["a1"]["b3"] == "isolated"         # 10.1.2.13 exists only in tenant B
    assert result["matrix"]["b1"]["edge"] == "isolated"       # tenant B has no 10.1.3.0/24
    out = tenants_lab.vm("a1").cmd("ping -n -c1 -W3 10.1.2.13")
    assert "Destination Host Unreachable" in out              # tenant A's router looked in tenant A only


def test_static_default_route_goes_through_the_edge_vm(tenants_lab):
    edge = tenants_lab.vm("edge")
    edge.cmd("ip addr add 198.51.100.1/32 dev lo")       # "the outside", inside the edge VM
    try:
        assert ping(tenants_lab.vm("a1"), "198.51.100.1") == 1
        assert ping(tenants_lab.vm("a2"), "198.51.100.1") == 1
        assert "Destination Net Unreachable" in tenants_lab.vm("b1").cmd("ping -n -c1 -W3 198.51.100.1")
    finally:
        edge.cmd("ip addr del 198.51.100.1/32 dev lo")
