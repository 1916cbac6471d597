"""The lab's readiness: what a ready lab holds, and exactly what is missing while it is not."""
from __future__ import annotations

from collections import Counter

import pytest

from mininet_topos import readiness
from mininet_topos.generate import grid
from mininet_topos.topology import parse_topology


def seed_like():
    """hv1: vm1 (web); hv2: vm2 (web), vm3 (app); hv3: vm4 (db, not routed)."""
    return parse_topology({
        "name": "t", "hypervisors": [{"name": "hv1"}, {"name": "hv2"}, {"name": "hv3"}],
        "logical_switches": [{"name": "web", "vni": 5001, "subnet": "10.1.1.0/24"},
                             {"name": "app", "vni": 5002, "subnet": "10.1.2.0/24"},
                             {"name": "db", "vni": 5003, "subnet": "10.1.3.0/24"}],
        "logical_routers": [{"name": "r", "interfaces": [{"switch": "web", "ip": "10.1.1.1"},
                                                         {"switch": "app", "ip": "10.1.2.1"}]}],
        "vms": [{"name": "vm1", "hypervisor": "hv1", "switch": "web", "ip": "10.1.1.11"},
                {"name": "vm2", "hypervisor": "hv2", "switch": "web", "ip": "10.1.1.12"},
                {"name": "vm3", "hypervisor": "hv2", "switch": "app", "ip": "10.1.2.13"},
                {"name": "vm4", "hypervisor": "hv3", "switch": "db", "ip": "10.1.3.14"}]})


def placement(topo):
    return {v.name: v.hypervisor for v in topo.vms}


def ready_state(topo, exp):
    """A controller state in which everything is there."""
    arp_table = {}
    for vni, ip, mac in exp.bindings.values():
        arp_table.setdefault(vni, {})[ip] = {"mac": mac}
    return {
        "hypervisors": {hv: {"openflow": True, "ovsdb": True, "flows": 30,
                             "attachments": {vm: {"vm": vm} for vm in vms},
                             "tunnels": {r: {"ofport": 10 + i, "bfd": "down"} for i, r in enumerate(exp.tunnels[hv])}}
                        for hv, vms in exp.ports.items()},
        "arp_table": arp_table,
    }


def test_tunnels_follow_switches_and_routers_not_every_pair():
    exp = readiness.expect(seed_like(), placement(seed_like()))
    assert exp.ports == {"hv1": {"vm1"}, "hv2": {"vm2", "vm3"}, "hv3": {"vm4"}}
    assert exp.tunnels == {"hv1": {"hv2": "192.168.50.2"}, "hv2": {"hv1": "192.168.50.1"}, "hv3": {}}


def test_a_moved_vm_is_expected_where_it_is_now():
    topo = seed_like()
    exp = readiness.expect(topo, placement(topo) | {"vm4": "hv1"})
    assert exp.ports["hv1"] == {"vm1", "vm4"} and exp.ports["hv3"] == set()
    assert exp.tunnels["hv3"] == {}


def test_nothing_missing_when_everything_is_there():
    topo = seed_like()
    exp = readiness.expect(topo, placement(topo))
    state = ready_state(topo, exp)
    assert readiness.missing(exp, state) == []
    assert all(readiness.hypervisor_ready(exp, state, hv) for hv in exp.ports)


def test_each_missing_thing_is_named():
    topo = seed_like()
    exp = readiness.expect(topo, placement(topo))
    state = ready_state(topo, exp)
    del state["hypervisors"]["hv3"]
    state["hypervisors"]["hv1"]["ovsdb"] = False
    state["hypervisors"]["hv2"]["attachments"].pop("vm3")
    state["hypervisors"]["hv2"]["tunnels"]["hv1"]["ofport"] = None
    state["arp_table"]["5002"] = {}
    assert readiness.missing(exp, state) == [
        "hv1: OVSDB not connected",
        "hv2: ports of vm3 not known to the controller",
        "hv2: no tunnel port to hv1",
        "hv3: not seen by the controller",
        "vm3: binding 10.1.2.13 not learned",
    ]
    assert not readiness.hypervisor_ready(exp, state, "hv2")


def test_a_hypervisor_without_flows_is_not_ready_for_announcements():
    topo = seed_like()
    exp = readiness.expect(topo, placement(topo))
    state = ready_state(topo, exp)
    state["hypervisors"]["hv1"]["flows"] = 0
    assert not readiness.hypervisor_ready(exp, state, "hv1")
    assert readiness.missing(exp, state) == ["hv1: no flows"]


def test_sent_is_not_installed_until_the_switch_says_so():
    topo = seed_like()
    exp = readiness.expect(topo, placement(topo))
    state = ready_state(topo, exp)
    held = {"hv1": (30, 1), "hv2": (30, 1), "hv3": (30, 0)}
    assert readiness.unconfirmed(exp, state, held) == []
    assert readiness.unconfirmed(exp, state, held | {"hv1": (12, 0)}) == [
        "hv1: br-int holds 12 of the 30 flows the controller sent", "hv1: br-int has 0 of its 1 tunnel ports"]


def test_unresolved_vteps_from_tnl_neigh_show():
    exp = readiness.expect(seed_like(), placement(seed_like()))
    shown = ("IP                                            MAC                 Bridge\n"
             "==========================================================================\n"
             "192.168.50.2                                  aa:bb:cc:dd:ee:02   br-phy\n")
    assert readiness.neighbour_ips(shown) == {"192.168.50.2"}
    assert readiness.unresolved(exp, {"hv1": readiness.neighbour_ips(shown)}) == [
        "hv2: VTEP 192.168.50.1 of hv1 not resolved"]


def test_long_lists_are_cut_in_the_message():
    topo = parse_topology(grid(12, 1))
    exp = readiness.expect(topo, placement(topo))
    state = ready_state(topo, exp)
    state["hypervisors"]["hv1"]["tunnels"] = {}
    assert readiness.missing(exp, state) == ["hv1: no tunnel port to hv10, hv11, hv12, hv2, hv3 and 6 more"]


def test_describe_cuts_a_long_list():
    assert readiness.describe([f"x{i}" for i in range(12)], limit=3) == "x0; x1; x2; and 9 more"
    assert readiness.describe(["a", "b"]) == "a; b"


def test_the_timeout_grows_with_the_lab():
    small, big = parse_topology(grid(2, 2)), parse_topology(grid(64, 1))
    assert readiness.timeout(big) > readiness.timeout(small) + 60


@pytest.mark.parametrize("n, m", [(2, 2), (8, 4), (32, 1), (64, 1)])
def test_generated_grids_are_valid_topologies(n, m):
    topo = parse_topology(grid(n, m))
    assert len(topo.hypervisors) == n and len(topo.vms) == n * m
    assert Counter(v.hypervisor for v in topo.vms) == {f"hv{i + 1}": m for i in range(n)}


def test_a_big_lab_waits_for_more_unanswered_echoes():
    from mininet_topos.readiness import echo_misses
    from mininet_topos.topology import parse_topology
    from tests.unit.test_capacity import mesh
    assert echo_misses(parse_topology(mesh(8))) is None             # the controller's own 3
    assert echo_misses(parse_topology(mesh(32))) == 4
    assert echo_misses(parse_topology(mesh(64))) == 8


def test_the_stages_of_a_start_follow_the_controllers_state():
    topo = seed_like()
    exp = readiness.expect(topo, placement(topo))
    state = ready_state(topo, exp)
    assert readiness.stages(exp, state, readiness.missing(exp, state)) == [
        "every hypervisor connected (OpenFlow and OVSDB)",
        "the controller has sent every flow and tunnel and learned every binding"]
    state["arp_table"] = {}                             # connected, bindings not learned yet
    assert readiness.stages(exp, state, readiness.missing(exp, state)) == [
        "every hypervisor connected (OpenFlow and OVSDB)"]
    state["hypervisors"]["hv3"]["ovsdb"] = False
    assert readiness.stages(exp, state, readiness.missing(exp, state)) == []
