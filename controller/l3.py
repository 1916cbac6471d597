"""Distributed logical routing: the router flows one hypervisor needs.

Every hypervisor holds every LIF of the routers its VMs' switches belong to, all answering
with one virtual MAC (vMAC). A packet a VM sends to the vMAC is routed where it starts:
TTL decremented, source MAC = vMAC, destination MAC = the next hop's (from the ARP table),
moved onto the destination logical switch (its VNI); L2 lookup then delivers it locally or
tunnels it straight to the destination VM's VTEP. Pure: (network, hypervisor) -> flows.
"""
from __future__ import annotations

import ipaddress

from controller.flows import ETH_IP, CheckPktLarger, DecTtl, Flow, Goto, Move, Output, SetField, interned
from controller.model import Hypervisor, Network
from controller.tables import REG_NEXT_HOP, REG_TOO_BIG, Table

ICMP = 1
LPM_BASE = 1000      # routes: priority = LPM_BASE + prefix length (longest prefix wins)
LOGICAL_MTU = 1450   # VXLAN (50 bytes) over a 1500-byte underlay: the largest IP packet a logical switch carries
MAX_FRAME = LOGICAL_MTU + 14    # ... as an untagged Ethernet frame (what check_pkt_larger measures)


@interned
def lif_echo_reply(vni: int, lif_ip: str, vmac: str, owner: str) -> Flow:
    """A ping to a router IP is answered by the local hypervisor."""
    return Flow.of(Table.L3_INPUT, 100,
                   {"tunnel_id": vni, "eth_dst": vmac, "eth_type": ETH_IP, "ip_proto": ICMP,
                    "icmpv4_type": 8, "ipv4_dst": lif_ip},
                   [Move("eth_src", "eth_dst"), SetField("eth_src", vmac),
                    Move("ipv4_src", "ipv4_dst"), SetField("ipv4_src", lif_ip),
                    SetField("icmpv4_type", 0), Output("in_port")], owner)


def to_router(vni: int, vmac: str, owner: str) -> list[Flow]:
    """IP to the vMAC is for the router; anything else to the vMAC stops here."""
    return [
        Flow.of(Table.L3_INPUT, 50, {"tunnel_id": vni, "eth_dst": vmac, "eth_type": ETH_IP},
                [Goto(Table.L3_ROUTING)], owner),
        Flow.of(Table.L2_LOOKUP, 100, {"tunnel_id": vni, "eth_dst": vmac}, [], owner),
    ]


@interned
def route(src_vni: int, prefix: ipaddress.IPv4Network, dst_vni: int, vmac: str, owner: str,
          next_hop: str | None = None) -> Flow:
    """Longest prefix match from one LIF's switch. A connected route's next hop is the
    destination itself; a static route's is its gateway. TTL 1 goes to the controller
    (dec_ttl's invalid-TTL packet-in) for ICMP time exceeded. A frame longer than the
    logical MTU is marked (check_pkt_larger) for L3_MTU."""
    hop = SetField(REG_NEXT_HOP, int(ipaddress.IPv4Address(next_hop))) if next_hop \
        else Move("ipv4_dst", REG_NEXT_HOP)
    match = {"tunnel_id": src_vni, "eth_type": ETH_IP}
    if prefix.prefixlen:
        match["ipv4_dst"] = (str(prefix.network_address), str(prefix.netmask)) \
            if prefix.prefixlen < 32 else str(prefix.network_address)
    return Flow.of(Table.L3_ROUTING, LPM_BASE + prefix.prefixlen, match,
                   [DecTtl(), SetField("eth_src", vmac), hop, SetField("tunnel_id", dst_vni),
                    CheckPktLarger(MAX_FRAME, REG_TOO_BIG), Goto(Table.L3_MTU)], owner)


def mtu_defaults() -> list[Flow]:
    """A routed frame that does not fit the logical MTU goes to the controller, which answers
    ICMP fragmentation needed (DF set) or fragments it; every other goes on to ARP resolve."""
    return [
        Flow.of(Table.L3_MTU, 100, {REG_TOO_BIG: (1, 1)}, [Output("controller")], "pipeline"),
        Flow.of(Table.L3_MTU, 0, {}, [Goto(Table.L3_ARP_RESOLVE)], "pipeline"),
    ]


@interned
def arp_resolve(vni: int, ip: str, mac: str, owner: str) -> Flow:
    return Flow.of(Table.L3_ARP_RESOLVE, 100, {"tunnel_id": vni, REG_NEXT_HOP: int(ipaddress.IPv4Address(ip))},
                   [SetField("eth_dst", mac), Goto(Table.L2_LOOKUP)], owner)


@interned
def resolve_miss(vni: int, owner: str) -> Flow:
    """Next hop with no binding: the controller ARPs for it from the LIF (or answers
    host unreachable)."""
    return Flow.of(Table.L3_ARP_RESOLVE, 1, {"tunnel_id": vni}, [Output("controller")], owner)


@interned
def no_route(vni: int, owner: str) -> Flow:
    return Flow.of(Table.L3_ROUTING, 1, {"tunnel_id": vni}, [Output("controller")], owner)


def router_flows(net: Network, local: set[int], r) -> list[Flow]:
    """Router `r` on a hypervisor whose VMs are on the switches in `local`: its LIFs where
    those VMs are, routes from there, and next-hop misses on every switch it joins."""
    vmac, intent = net.intent.vmac, net.intent
    owner = f"lr:{r.name}"
    lifs = [(intent.switch(i.switch).vni, i) for i in r.interfaces]
    flows = []
    for src_vni, _ in lifs:
        if src_vni not in local:
            continue
        flows += to_router(src_vni, vmac, owner)
        flows.append(no_route(src_vni, owner))
        for dst_vni, lif in lifs:
            flows.append(lif_echo_reply(src_vni, str(lif.ip), vmac, f"lif:{r.name}/{lif.switch}"))
            subnet = intent.switch(lif.switch).subnet
            flows.append(route(src_vni, subnet, dst_vni, vmac, f"lif:{r.name}/{lif.switch}"))
        for rt in r.routes:
            via = next(v for v, lif in lifs if rt.next_hop in intent.switch(lif.switch).subnet)
            flows.append(route(src_vni, rt.prefix, via, vmac, f"route:{r.name}/{rt.prefix}",
                               next_hop=str(rt.next_hop)))
    if any(v in local for v, _ in lifs):
        flows += [resolve_miss(dst_vni, owner) for dst_vni, _ in lifs]
    return flows


def binding_resolve(net: Network, local: set[int], vni: int, ip: str) -> list[Flow]:
    """A binding as a next hop, on a hypervisor where a router joins `vni` to local VMs."""
    b = net.bindings.get(vni, {}).get(ip)
    if b is None or b.source == "lif" or net.lif_ip(vni) is None or not (net.joined(vni) & local):
        return []
    return [arp_resolve(vni, ip, b.mac, f"binding:{vni}/{ip}")]


def l3_flows(net: Network, hv: Hypervisor) -> list[Flow]:
    local = hv.vnis()
    flows = mtu_defaults()
    for r in net.intent.routers:
        flows += router_flows(net, local, r)
    for vni in sorted(net.routed_vnis(local)):
        for ip in net.bindings[vni]:
            flows += binding_resolve(net, local, vni, ip)
    return flows
