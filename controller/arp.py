"""ARP at the controller: learn bindings from what VMs say, answer what the flows could not.

Pure: given the model and one ARP packet from a VM port, decide what to learn and what to
send. The app turns the decision into a packet-out.
"""
from __future__ import annotations

import dataclasses
import logging

from os_ken.lib.packet import arp, ethernet, packet
from os_ken.lib.packet import ether_types

from controller.flows import BROADCAST
from controller.model import Attachment, BindingConflict, Network

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ArpDecision:
    learned: bool                 # the ARP table changed: flows must follow
    reply: bytes | None = None    # an ARP reply to send back out of the VM's port
    forward: str | None = None    # "flood" | "unicast": let the original go on
    why: str = ""
    refused: bool = False         # it lied (a MAC or IP not the port's): it goes nowhere; `why` says so


class MalformedPacket(ValueError):
    pass


def parse_arp(data: bytes) -> tuple[ethernet.ethernet, arp.arp]:
    try:
        pkt = packet.Packet(data)
    except Exception as e:      # os-ken's parser raises assorted errors on junk
        raise MalformedPacket(f"unparsable frame ({len(data)} bytes): {e}") from e
    eth = pkt.get_protocol(ethernet.ethernet)
    req = pkt.get_protocol(arp.arp)
    if eth is None or eth.ethertype != ether_types.ETH_TYPE_ARP or req is None:
        raise MalformedPacket(f"not an ARP frame ({len(data)} bytes)")
    return eth, req


def arp_reply(eth: ethernet.ethernet, req: arp.arp, mac: str) -> bytes:
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=eth.src, src=mac, ethertype=ether_types.ETH_TYPE_ARP))
    p.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=mac, src_ip=req.dst_ip,
                           dst_mac=req.src_mac, dst_ip=req.src_ip))
    p.serialize()
    return bytes(p.data)


def arp_request(vmac: str, router_ip: str, target_ip: str) -> bytes:
    """The router's own ARP request for a next hop it has no binding for."""
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=vmac, ethertype=ether_types.ETH_TYPE_ARP))
    p.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=vmac, src_ip=router_ip,
                           dst_mac="00:00:00:00:00:00", dst_ip=target_ip))
    p.serialize()
    return bytes(p.data)


def decide(net: Network, port: Attachment, eth: ethernet.ethernet, req: arp.arp, now: float = 0.0) -> ArpDecision:
    """What to do with an ARP a VM port sent. An ARP that lies (a sender MAC that is not the
    port's, or an address it may not claim: another port's, a LIF's, one it was not given)
    teaches nothing and goes nowhere, unicast or broadcast; the app reports it (rate-limited)."""
    learned = False
    if req.src_mac != port.mac or eth.src != port.mac:
        return ArpDecision(False, refused=True,
                           why=f"{port.lport}: ARP claims MAC {req.src_mac} but its port is {port.mac}: "
                               "not learned, dropped")
    if req.src_ip != "0.0.0.0":
        try:
            learned = net.learn_binding(port, req.src_ip, now)
            if learned:
                LOG.info("VNI %d: learned %s is at %s (%s)", port.vni, req.src_ip, req.src_mac, port.lport)
        except BindingConflict as e:
            return ArpDecision(False, refused=True, why=f"{port.lport}: {e}: its ARP dropped")
    if req.src_ip == req.dst_ip:          # gratuitous, as a request or as a reply
        return ArpDecision(learned, why="gratuitous ARP: learned, not flooded")
    if req.opcode == arp.ARP_REQUEST and eth.dst == BROADCAST:
        known = net.bindings.get(port.vni, {}).get(req.dst_ip)
        if not net.intent.arp_suppression and not (known and known.source == "lif"):   # a LIF: always
            return ArpDecision(learned, forward="flood", why="ARP suppression is off: flooded")
        if known:
            return ArpDecision(learned, reply=arp_reply(eth, req, known.mac),
                               why=f"controller knows {req.dst_ip} is at {known.mac}")
        return ArpDecision(learned, forward="flood", why=f"{req.dst_ip} unknown: flooded")
    return ArpDecision(learned, forward="unicast", why="unicast ARP: passed to its target")
