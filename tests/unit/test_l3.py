"""Distributed routing flows: what each hypervisor gets for the routers its VMs use."""
import dataclasses
import ipaddress

import pytest

from controller.flows import ETH_IP, CheckPktLarger, DecTtl, Goto, Move, Output, SetField
from controller.l3 import LPM_BASE, MAX_FRAME, l3_flows
from controller.model import BindingConflict, Network
from controller.pipeline import hypervisor_flows
from controller.tables import REG_NEXT_HOP, REG_TOO_BIG, Table
from tests.labnet import network, port_of

VMAC = "02:50:56:56:44:52"
# Tenant A: aweb + aapp + aedge on router ra (default route via the edge VM); tenant B: bweb
# + bapp on rb, the same subnets. hv1 hosts a1 (aweb) and b1 (bweb); hv2 a2 (aapp), edge;
# hv3 only b3 (bapp).
TOPO = {
    "name": "t",
    "hypervisors": [{"name": "hv1"}, {"name": "hv2"}, {"name": "hv3"}],
    "logical_switches": [{"name": "aweb", "vni": 6001, "subnet": "10.1.1.0/24"},
                         {"name": "aapp", "vni": 6002, "subnet": "10.1.2.0/24"},
                         {"name": "aedge", "vni": 6003, "subnet": "10.1.3.0/24"},
                         {"name": "bweb", "vni": 7001, "subnet": "10.1.1.0/24"},
                         {"name": "bapp", "vni": 7002, "subnet": "10.1.2.0/24"}],
    "logical_routers": [
        {"name": "ra", "interfaces": [{"switch": "aweb", "ip": "10.1.1.1"}, {"switch": "aapp", "ip": "10.1.2.1"},
                                      {"switch": "aedge", "ip": "10.1.3.1"}],
         "routes": [{"prefix": "0.0.0.0/0", "next_hop": "10.1.3.254"}]},
        {"name": "rb", "interfaces": [{"switch": "bweb", "ip": "10.1.1.1"}, {"switch": "bapp", "ip": "10.1.2.1"}]}],
    "vms": [{"name": "a1", "hypervisor": "hv1", "switch": "aweb", "ip": "10.1.1.11"},
            {"name": "b1", "hypervisor": "hv1", "switch": "bweb", "ip": "10.1.1.11"},
            {"name": "a2", "hypervisor": "hv2", "switch": "aapp", "ip": "10.1.2.12"},
            {"name": "edge", "hypervisor": "hv2", "switch": "aedge", "ip": "10.1.3.254"},
            {"name": "b3", "hypervisor": "hv3", "switch": "bapp", "ip": "10.1.2.13"}],
}


@pytest.fixture
def net() -> Network:
    _, net = network(TOPO)              # every VM's port has its configured IP
    for h in net.hypervisors.values():
        h.tunnels = {o: 100 + i for i, o in enumerate(net.wanted_tunnels(h))}
    return net


def test_with_arp_suppression_off_only_the_lifs_are_answered_by_the_flows(net):
    net.set_intent(dataclasses.replace(net.intent, arp_suppression=False))
    fs = hypervisor_flows(net, net.hypervisors["hv1"])
    answered = {(dict(f.match)["tunnel_id"], dict(f.match)["arp_tpa"]) for f in fs if f.table == Table.ARP_RESPONDER
                and "arp_tpa" in dict(f.match)}
    assert answered == {(6001, "10.1.1.1"), (7001, "10.1.1.1")}      # a1's and b1's gateways, not a1 or b1


def routes(flows, src_vni):
    return {dict(f.match).get("ipv4_dst", "default"): f for f in flows
            if f.table == Table.L3_ROUTING and dict(f.match).get("tunnel_id") == src_vni and f.priority > 1}


def test_lifs_are_bound_to_the_vmac_and_cannot_be_claimed(net):
    assert net.bindings[6001]["10.1.1.1"].mac == VMAC and net.bindings[6001]["10.1.1.1"].source == "lif"
    _, learning = network(TOPO, learn=("a1",))      # even a "learn the IP" port may not take it
    _, a1 = port_of(learning, "a1")
    with pytest.raises(BindingConflict, match=rf"10.1.1.1 is held by {VMAC} \(lif\)"):
        learning.learn_binding(a1, "10.1.1.1")
    assert learning.bindings[6001]["10.1.1.1"].source == "lif" and learning.learned == {}


def test_gateway_arp_is_answered_with_the_vmac_on_the_vms_hypervisor(net):
    fs = hypervisor_flows(net, net.hypervisors["hv1"])
    rsp = [f for f in fs if f.table == Table.ARP_RESPONDER and dict(f.match).get("arp_tpa") == "10.1.1.1"]
    assert {dict(f.match)["tunnel_id"] for f in rsp} == {6001, 7001}     # one per tenant, each its own VNI
    assert all(SetField("eth_src", VMAC) in f.actions for f in rsp)


def test_routes_are_longest_prefix_first_and_move_the_packet_to_the_destination_vni(net):
    r = routes(l3_flows(net, net.hypervisors["hv1"]), 6001)
    app = r[("10.1.2.0", "255.255.255.0")]
    assert app.priority == LPM_BASE + 24 and r["default"].priority == LPM_BASE
    assert app.actions == (DecTtl(), SetField("eth_src", VMAC), Move("ipv4_dst", REG_NEXT_HOP),
                           SetField("tunnel_id", 6002), CheckPktLarger(MAX_FRAME, REG_TOO_BIG),
                           Goto(Table.L3_MTU))
    default = r["default"].actions
    assert SetField(REG_NEXT_HOP, int(ipaddress.IPv4Address("10.1.3.254"))) in default
    assert SetField("tunnel_id", 6003) in default             # the next hop's switch


def test_tenants_stay_apart(net):
    fs = l3_flows(net, net.hypervisors["hv1"])
    from_b = routes(fs, 7001)
    assert set(from_b) == {("10.1.1.0", "255.255.255.0"), ("10.1.2.0", "255.255.255.0")}   # no default route
    assert all(SetField("tunnel_id", v) not in f.actions for f in from_b.values() for v in (6001, 6002, 6003))
    resolve = [f for f in fs if f.table == Table.L3_ARP_RESOLVE and f.priority == 100]
    assert {dict(f.match)["tunnel_id"] for f in resolve} <= {6001, 6002, 6003, 7001, 7002}
    b3 = [f for f in resolve if dict(f.match)["tunnel_id"] == 7002]
    assert [SetField("eth_dst", net.intent.port("b3").mac) in f.actions for f in b3] == [True]


def test_echo_to_any_lif_of_the_router_is_answered_in_port(net):
    fs = l3_flows(net, net.hypervisors["hv1"])
    echo = [f for f in fs if f.table == Table.L3_INPUT and f.priority == 100 and dict(f.match)["tunnel_id"] == 6001]
    assert {dict(f.match)["ipv4_dst"] for f in echo} == {"10.1.1.1", "10.1.2.1", "10.1.3.1"}
    assert all(f.actions[-1] == Output("in_port") and SetField("icmpv4_type", 0) in f.actions for f in echo)


def test_a_hypervisor_gets_router_flows_only_for_routers_its_vms_use(net):
    fs = l3_flows(net, net.hypervisors["hv3"])                  # hosts only b3 (tenant B)
    assert fs and all(f.owner.split(":")[1].split("/")[0] == "rb" or f.owner.startswith("binding:70")
                      for f in fs if f.table in (Table.L3_INPUT, Table.L3_ROUTING))
    assert not any(dict(f.match).get("tunnel_id") in (6001, 6002, 6003) for f in fs)


def test_routed_vnis_bring_tunnels_and_unicast_flows_to_where_routed_packets_go(net):
    hv1 = net.hypervisors["hv1"]
    assert net.routed_vnis(hv1.vnis()) == {6001, 6002, 6003, 7001, 7002}
    assert set(net.wanted_tunnels(hv1)) == {"hv2", "hv3"}          # a2/edge (tenant A), b3 (tenant B)
    assert set(net.wanted_tunnels(net.hypervisors["hv3"])) == {"hv1"}   # only bweb's b1 is routable from b3
    to_b3 = [f for f in hypervisor_flows(net, hv1) if f.table == Table.L2_LOOKUP
             and dict(f.match).get("eth_dst") == net.intent.port("b3").mac]
    assert [f.actions for f in to_b3] == [(Output(hv1.tunnels["hv3"]),)]


def test_no_two_flows_share_a_key(net):
    for hv in net.hypervisors.values():
        fs = hypervisor_flows(net, hv)
        assert len({f.key for f in fs}) == len(fs)


def test_a_routed_frame_longer_than_the_logical_mtu_goes_to_the_controller(net):
    fs = [f for f in l3_flows(net, net.hypervisors["hv1"]) if f.table == Table.L3_MTU]
    big = next(f for f in fs if dict(f.match).get(REG_TOO_BIG) == (1, 1))
    assert big.actions == (Output("controller"),) and MAX_FRAME == 1450 + 14
    assert any(not f.match and f.actions == (Goto(Table.L3_ARP_RESOLVE),) for f in fs)
