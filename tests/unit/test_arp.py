"""ARP at the controller: parse what a VM sent, then learn, refuse, answer or pass it on."""
import dataclasses
import random

import pytest
from os_ken.lib.packet import arp, ethernet, icmp, ipv4, packet
from os_ken.lib.packet.ether_types import ETH_TYPE_ARP, ETH_TYPE_IP

from controller.arp import MalformedPacket, decide, parse_arp
from controller.flows import BROADCAST
from controller.model import Attachment, Binding, Network
from tests.labnet import network

BLUE, RED = 5001, 5002
B1, B2, R1 = "00:50:56:00:00:01", "00:50:56:00:00:02", "00:50:56:00:00:03"
STATIC_IP, STATIC_MAC = "10.1.1.50", "00:50:56:00:99:01"
ZERO = "00:00:00:00:00:00"
PORT_B1 = Attachment("b1", 1, "b1", B1, BLUE)
PORT_B2 = Attachment("b2", 1, "b2", B2, BLUE)
PORT_R1 = Attachment("r1", 2, "r1", R1, RED)
# b1, b2 and r1 are "learn the IP" ports (no configured address): what they say in ARP is learned.
TOPO = {
    "name": "t", "hypervisors": [{"name": "hv1"}, {"name": "hv2"}],
    "logical_switches": [{"name": "blue", "vni": BLUE, "subnet": "10.1.1.0/24"},
                         {"name": "red", "vni": RED, "subnet": "10.1.1.0/24"}],
    "vms": [{"name": "b1", "hypervisor": "hv1", "switch": "blue", "ip": "10.1.1.11", "mac": B1},
            {"name": "r1", "hypervisor": "hv1", "switch": "red", "ip": "10.1.1.11", "mac": R1},
            {"name": "b2", "hypervisor": "hv2", "switch": "blue", "ip": "10.1.1.12", "mac": B2}],
    "static_bindings": [{"switch": "blue", "ip": STATIC_IP, "mac": STATIC_MAC}]}


@pytest.fixture
def net() -> Network:
    _, net = network(TOPO, learn=("b1", "b2", "r1"))
    assert net.hypervisors["hv1"].attachments == {"b1": PORT_B1, "r1": PORT_R1}
    assert net.hypervisors["hv2"].attachments == {"b2": PORT_B2}
    return net


def frame(sha, spa, tpa, *, op=arp.ARP_REQUEST, eth_dst=BROADCAST, eth_src=None, tha=ZERO) -> bytes:
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src or sha, ethertype=ETH_TYPE_ARP))
    p.add_protocol(arp.arp(opcode=op, src_mac=sha, src_ip=spa, dst_mac=tha, dst_ip=tpa))
    p.serialize()
    return bytes(p.data)


def ask(net, port, data):
    return decide(net, port, *parse_arp(data))


# --- parsing -------------------------------------------------------------------------------

def ipv4_frame() -> bytes:
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=B2, src=B1, ethertype=ETH_TYPE_IP))
    p.add_protocol(ipv4.ipv4(src="10.1.1.11", dst="10.1.1.12", proto=1))
    p.add_protocol(icmp.icmp(data=icmp.echo(id_=1, seq=1, data=b"x" * 8)))
    p.serialize()
    return bytes(p.data)


JUNK = {
    "empty": b"",
    "ten random bytes": random.Random(7).randbytes(10),
    "ipv4 frame": ipv4_frame(),
    "truncated arp": frame(B1, "10.1.1.11", "10.1.1.12")[:30],
    "ethernet header only": frame(B1, "10.1.1.11", "10.1.1.12")[:14],
    "one byte": b"\x00",
}


@pytest.mark.parametrize("data", JUNK.values(), ids=JUNK.keys())
def test_parse_arp_rejects_junk_with_malformed_packet(data):
    with pytest.raises(MalformedPacket, match=f"{len(data)} bytes"):
        parse_arp(data)


def test_parse_arp_raises_nothing_but_malformed_packet_on_random_input():
    rnd = random.Random(1)
    arp_head = frame(B1, "10.1.1.11", "10.1.1.12")[:14]
    for _ in range(500):
        data = rnd.randbytes(rnd.randrange(0, 64))
        for candidate in (data, arp_head + data):
            try:
                eth, req = parse_arp(candidate)
            except MalformedPacket:
                continue
            assert eth.ethertype == ETH_TYPE_ARP and isinstance(req, arp.arp)


def test_parse_arp_reads_a_good_frame():
    eth, req = parse_arp(frame(B1, "10.1.1.11", "10.1.1.12"))
    assert (eth.src, eth.dst) == (B1, BROADCAST)
    assert (req.opcode, req.src_mac, req.src_ip, req.dst_ip) == (arp.ARP_REQUEST, B1, "10.1.1.11", "10.1.1.12")


# --- deciding ------------------------------------------------------------------------------

def test_a_vms_arp_teaches_its_binding(net):
    d = ask(net, PORT_B1, frame(B1, "10.1.1.11", "10.1.1.12"))
    assert d.learned is True
    assert net.bindings[BLUE]["10.1.1.11"] == Binding(BLUE, "10.1.1.11", B1, "learned", "b1", 0.0)
    assert "10.1.1.11" not in net.bindings[RED]
    assert ask(net, PORT_B1, frame(B1, "10.1.1.11", "10.1.1.12")).learned is False   # nothing new


def test_a_claim_on_an_ip_held_by_another_attached_vm_is_refused(net):
    assert ask(net, PORT_B2, frame(B2, "10.1.1.12", "10.1.1.1")).learned
    d = ask(net, PORT_B1, frame(B1, "10.1.1.12", "10.1.1.1"))
    assert d.learned is False
    assert net.bindings[BLUE]["10.1.1.12"].mac == B2
    assert net.conflicts == [{"vni": BLUE, "ip": "10.1.1.12", "claimed_by": B1, "held_by": B2}]


def test_a_claim_on_a_static_binding_is_refused(net):
    d = ask(net, PORT_B1, frame(B1, STATIC_IP, STATIC_IP))
    assert d.learned is False and d.reply is None and d.forward is None
    assert net.bindings[BLUE][STATIC_IP] == Binding(BLUE, STATIC_IP, STATIC_MAC, "static")
    assert net.conflicts == [{"vni": BLUE, "ip": STATIC_IP, "claimed_by": B1, "held_by": STATIC_MAC}]


def test_the_same_ip_on_another_vni_is_no_conflict(net):
    ask(net, PORT_B1, frame(B1, "10.1.1.11", "10.1.1.1"))
    assert ask(net, PORT_R1, frame(R1, "10.1.1.11", "10.1.1.1")).learned
    assert net.bindings[RED]["10.1.1.11"].mac == R1 and net.conflicts == []


@pytest.mark.parametrize("sha, eth_src", [(B2, B2), (B2, B1), (B1, B2)],
                         ids=["both spoofed", "arp sender spoofed", "ethernet source spoofed"])
def test_an_arp_from_a_mac_that_is_not_the_ports_is_refused(net, sha, eth_src):
    d = ask(net, PORT_B1, frame(sha, "10.1.1.11", STATIC_IP, eth_src=eth_src))
    assert (d.learned, d.reply, d.forward) == (False, None, None)
    assert "10.1.1.11" not in net.bindings[BLUE]
    assert "not learned" in d.why


def test_a_gratuitous_arp_is_learned_and_not_forwarded(net):
    d = ask(net, PORT_B1, frame(B1, "10.1.1.11", "10.1.1.11"))
    assert (d.learned, d.reply, d.forward) == (True, None, None)
    assert net.bindings[BLUE]["10.1.1.11"].mac == B1


def test_a_gratuitous_arp_reply_is_learned_and_not_forwarded(net):
    d = ask(net, PORT_B1, frame(B1, "10.1.1.11", "10.1.1.11", op=arp.ARP_REPLY, tha=B1))
    assert (d.learned, d.reply, d.forward) == (True, None, None)


def test_an_arp_probe_teaches_nothing(net):
    d = ask(net, PORT_B1, frame(B1, "0.0.0.0", "10.1.1.11"))
    assert d.learned is False and "0.0.0.0" not in net.bindings[BLUE] and net.conflicts == []


def test_a_broadcast_request_for_a_known_ip_is_answered(net):
    d = ask(net, PORT_B1, frame(B1, "10.1.1.11", STATIC_IP))
    assert d.forward is None and d.reply is not None
    eth, rep = parse_arp(d.reply)
    assert (eth.src, eth.dst) == (STATIC_MAC, B1)
    assert rep.opcode == arp.ARP_REPLY
    assert (rep.src_mac, rep.src_ip, rep.dst_mac, rep.dst_ip) == (STATIC_MAC, STATIC_IP, B1, "10.1.1.11")


def test_a_learned_binding_is_used_to_answer(net):
    ask(net, PORT_B2, frame(B2, "10.1.1.12", "10.1.1.1"))
    eth, rep = parse_arp(ask(net, PORT_B1, frame(B1, "10.1.1.11", "10.1.1.12")).reply)
    assert (eth.src, rep.src_mac, rep.src_ip) == (B2, B2, "10.1.1.12")


def test_a_request_for_an_unknown_ip_is_flooded(net):
    d = ask(net, PORT_B1, frame(B1, "10.1.1.11", "10.1.1.99"))
    assert (d.reply, d.forward) == (None, "flood")


def test_another_vnis_binding_is_not_used_to_answer(net):
    d = ask(net, PORT_R1, frame(R1, "10.1.1.11", STATIC_IP))
    assert (d.reply, d.forward) == (None, "flood")


def test_a_unicast_request_is_passed_to_its_target(net):
    d = ask(net, PORT_B1, frame(B1, "10.1.1.11", STATIC_IP, eth_dst=STATIC_MAC))
    assert (d.reply, d.forward) == (None, "unicast")


def test_a_configured_port_learns_nothing_and_its_address_is_answered_from_intent():
    _, net = network(TOPO)                  # b1 and b2 have their configured IPs: nothing to snoop
    before = dict(net.bindings[BLUE])
    d = ask(net, PORT_B1, frame(B1, "10.1.1.11", "10.1.1.12"))
    assert d.learned is False and parse_arp(d.reply)[1].src_mac == B2
    assert net.bindings[BLUE]["10.1.1.12"] == Binding(BLUE, "10.1.1.12", B2, "port", "b2")
    assert ask(net, PORT_B1, frame(B1, "10.1.1.77", "10.1.1.77")).learned is False     # not its address
    assert net.bindings[BLUE] == before and net.learned == {}


def test_with_arp_suppression_off_a_request_for_a_known_ip_is_flooded(net):
    net.set_intent(dataclasses.replace(net.intent, arp_suppression=False))
    d = ask(net, PORT_B1, frame(B1, "10.1.1.11", STATIC_IP))
    assert (d.reply, d.forward) == (None, "flood") and d.learned is True      # learning goes on


def test_with_arp_suppression_off_the_router_still_answers_for_its_lif():
    _, net = network({**TOPO, "logical_routers": [{"name": "r", "interfaces": [{"switch": "blue", "ip": "10.1.1.1"}]}]},
                     learn=("b1",))
    net.set_intent(dataclasses.replace(net.intent, arp_suppression=False))
    eth, rep = parse_arp(ask(net, PORT_B1, frame(B1, "10.1.1.11", "10.1.1.1")).reply)
    assert (eth.src, rep.src_mac, rep.src_ip) == (net.intent.vmac, net.intent.vmac, "10.1.1.1")
