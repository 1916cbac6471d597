"""Port security and bounded punts, as data: which frames a port may send, what is dropped
and counted per cause, which punts pass which meter; a lying ARP goes nowhere."""
from __future__ import annotations

import pytest
from os_ken.lib.packet import arp, ethernet

from controller import security
from controller.arp import decide
from controller.flows import Flow, Meter, Output
from controller.guard import Guard
from controller.intent import parse_intent
from controller.model import Hypervisor, Network
from controller.pipeline import hypervisor_flows
from controller.tables import Table

MAC1, MAC2, MAC5, EDGE = "00:50:56:00:00:01", "00:50:56:00:00:02", "00:50:56:00:00:05", "00:50:56:00:00:09"


@pytest.fixture
def net():
    n = Network(parse_intent({
        "logical_switches": [{"name": "web", "vni": 5001, "subnet": "10.1.1.0/24"}],
        "logical_routers": [{"name": "dlr", "interfaces": [{"switch": "web", "ip": "10.1.1.1"}]}],
        "logical_ports": [{"name": "vm1", "switch": "web", "mac": MAC1, "ips": ["10.1.1.11"]},
                          {"name": "vm2", "switch": "web", "mac": MAC2, "ips": ["10.1.1.12"]},
                          {"name": "vm5", "switch": "web", "mac": MAC5, "learn": True},
                          {"name": "edge", "switch": "web", "mac": EDGE, "ips": ["10.1.1.254"], "trusted": True}]}))
    hv = n.hypervisors["hv1"] = Hypervisor("hv1", "169.254.77.2")
    n.set_interfaces(hv, {"vm1": (1, "vm1"), "vm5": (5, "vm5"), "edge": (9, "edge")})
    return n


def secured(net, port: str) -> list[Flow]:
    a = next(a for a in net.hypervisors["hv1"].attachments.values() if a.lport == port)
    return [f for f in hypervisor_flows(net, net.hypervisors["hv1"])
            if f.table == Table.PORT_SECURITY and dict(f.match).get("in_port") == a.ofport]


def verdict(flows: list[Flow], frame: dict) -> str:
    """What the highest-priority flow that matches `frame` does: "pass", "punt" or a drop cause."""
    def matches(f):
        return all(frame.get(k) == v for k, v in f.match)
    f = max((f for f in flows if matches(f)), key=lambda f: f.priority)
    if not f.actions:
        return security.CAUSES.get(f.priority, "drop")
    return "punt" if Output("controller") in f.actions else "pass"


VLAN = {"vlan_vid": security.VLAN_PRESENT}


def frame(in_port, mac, **fields):
    return {"in_port": in_port, "eth_src": mac, **fields}


def test_a_port_sends_only_from_its_mac_and_its_addresses(net):
    fs = secured(net, "vm1")
    ip = {"eth_type": 0x0800}
    assert verdict(fs, frame(1, MAC1, **ip, ipv4_src="10.1.1.11")) == "pass"
    assert verdict(fs, frame(1, MAC1, **ip, ipv4_src="10.1.1.12")) == "ipv4-spoofed"
    assert verdict(fs, frame(1, MAC1, **ip, ipv4_src="192.0.2.66")) == "ipv4-spoofed"
    assert verdict(fs, frame(1, MAC2, **ip, ipv4_src="10.1.1.11")) == "mac-spoofed"
    assert verdict(fs, frame(1, MAC1, eth_type=0x0806, arp_sha=MAC1, arp_spa="10.1.1.11")) == "pass"
    assert verdict(fs, frame(1, MAC1, eth_type=0x0806, arp_sha=MAC1, arp_spa="10.1.1.1")) == "arp-spoofed"
    assert verdict(fs, frame(1, MAC1, eth_type=0x0806, arp_sha=MAC2, arp_spa="10.1.1.11")) == "arp-spoofed"
    assert verdict(fs, frame(1, MAC1, eth_type=0x0806, arp_sha=MAC1, arp_spa="0.0.0.0")) == "pass"   # probe
    assert verdict(fs, frame(1, MAC1, **ip, ipv4_src="0.0.0.0", ipv4_dst="255.255.255.255", ip_proto=17,
                             udp_src=68, udp_dst=67)) == "pass"                                     # DHCP
    assert verdict(fs, frame(1, MAC1, eth_type=0x86DD, ipv6_src="fe80::250:56ff:fe00:1")) == "pass"
    assert verdict(fs, frame(1, MAC1, eth_type=0x86DD, ipv6_src="fe80::1")) == "ipv6-spoofed"
    assert verdict(fs, frame(1, MAC1, eth_type=0x8035)) == "pass"                                   # RARP
    assert verdict(fs, frame(1, MAC1, eth_type=0x88CC)) == "ethertype"
    assert verdict(fs, frame(1, MAC1, **ip, ipv4_src="10.1.1.11", **VLAN)) == "vlan-tagged"


def test_a_learn_ip_port_asks_the_controller_until_it_holds_an_address(net):
    arp_from = dict(eth_type=0x0806, arp_sha=MAC5, arp_spa="10.1.1.55")
    assert verdict(secured(net, "vm5"), frame(5, MAC5, **arp_from)) == "punt"
    assert verdict(secured(net, "vm5"), frame(5, MAC5, eth_type=0x0800, ipv4_src="10.1.1.55")) == "ipv4-spoofed"
    vm5 = next(a for a in net.hypervisors["hv1"].attachments.values() if a.lport == "vm5")
    assert net.learn_binding(vm5, "10.1.1.55")
    assert verdict(secured(net, "vm5"), frame(5, MAC5, eth_type=0x0800, ipv4_src="10.1.1.55")) == "pass"


def test_a_trusted_port_forwards_for_others_but_sends_no_tags(net):
    fs = secured(net, "edge")
    assert verdict(fs, frame(9, MAC2, eth_type=0x0800, ipv4_src="198.51.100.7")) == "pass"
    assert verdict(fs, frame(9, EDGE, eth_type=0x0800, ipv4_src="10.1.1.254", **VLAN)) == "vlan-tagged"


def test_every_punt_passes_a_meter_its_ports_or_the_hypervisors(net):
    hv = net.hypervisors["hv1"]
    punts = [f for f in hypervisor_flows(net, hv) if Output("controller") in f.actions]
    assert punts and all(isinstance(f.actions[0], Meter) for f in punts)
    learn = next(f for f in punts if dict(f.match).get("in_port") == 5)
    assert learn.actions[0] == Meter(security.PORT_METER_BASE + 5)
    assert any(f.actions[0] == Meter(security.HV_METER) for f in punts if "in_port" not in dict(f.match))
    assert set(security.meters(hv)) == {security.HV_METER} | {security.PORT_METER_BASE + p for p in (1, 5, 9)}


def test_drops_are_counted_per_port_and_cause_and_reported_once(caplog):
    guard = Guard()
    stats = [("port:vm1", security.PRIORITY["mac-spoofed"], 3), ("port:vm1", security.PRIORITY["vlan-tagged"], 0),
             ("port:vm1", 200, 50), ("ls:5001", 100, 7)]
    with caplog.at_level("WARNING"):
        guard.record_drops("hv1", stats, now=100.0)
        guard.record_drops("hv1", [("port:vm1", security.PRIORITY["mac-spoofed"], 9)], now=101.0)
    assert guard.counters() == [{"port": "vm1", "hypervisor": "hv1", "dropped": {"mac-spoofed": 9}, "total": 9}]
    assert sum("vm1 on hv1: mac-spoofed" in r.message for r in caplog.records) == 1


def arp_frame(sha, spa, tpa, op=arp.ARP_REQUEST, dst="ff:ff:ff:ff:ff:ff", src=None):
    return (ethernet.ethernet(dst=dst, src=src or sha, ethertype=0x0806),
            arp.arp(opcode=op, src_mac=sha, src_ip=spa, dst_mac="00:00:00:00:00:00", dst_ip=tpa))


@pytest.mark.parametrize("sha,spa,src", [(MAC5, "10.1.1.1", None),          # claims the gateway
                                         (MAC5, "10.1.1.12", None),         # claims another port's IP
                                         (MAC2, "10.1.1.55", MAC5)])        # sender MAC not its own
def test_a_lying_arp_goes_nowhere_and_teaches_nothing(net, sha, spa, src):
    vm5 = next(a for a in net.hypervisors["hv1"].attachments.values() if a.lport == "vm5")
    before = {vni: dict(t) for vni, t in net.bindings.items()}
    for op, dst in ((arp.ARP_REQUEST, "ff:ff:ff:ff:ff:ff"), (arp.ARP_REPLY, MAC1)):
        d = decide(net, vm5, *arp_frame(sha, spa, "10.1.1.11", op, dst, src))
        assert d.refused and d.forward is None and d.reply is None and not d.learned
    assert net.bindings == before
