"""Logical switching: the flows one hypervisor needs for the logical switches it hosts.

Pure: (network model, hypervisor) -> list of Flow. One small function per kind of flow,
so reading this file reads like the pipeline (see controller/tables.py).
"""
from __future__ import annotations

from controller.flows import BROADCAST, ETH_ARP, Flow, Goto, Move, Output, SetField, interned
from controller.model import Attachment, Hypervisor, Network
from controller.tables import REG_FROM_TUNNEL, Table

PIPELINE = "pipeline"   # owner of the table-miss flows every hypervisor has
ARP_RESPONDER_PRIORITY = 100


def pipeline_defaults() -> list[Flow]:
    """Table-miss flows: what happens when nothing more specific matches."""
    f = Flow.of
    return [
        f(Table.CLASSIFY, 0, {}, [], PIPELINE),                               # unknown port: drop
        f(Table.ARP_SNOOP, 50, {"eth_type": ETH_ARP}, [Output("controller")], PIPELINE),
        f(Table.ARP_SNOOP, 0, {}, [Goto(Table.ARP_RESPONDER)], PIPELINE),
        f(Table.ARP_RESPONDER, 0, {}, [Goto(Table.L3_INPUT)], PIPELINE),
        f(Table.L3_INPUT, 0, {}, [Goto(Table.L2_LOOKUP)], PIPELINE),
        f(Table.L2_LOOKUP, 0, {}, [Goto(Table.FLOOD)], PIPELINE),
        f(Table.FLOOD, 0, {}, [], PIPELINE),                                  # unknown VNI: drop
    ]


@interned
def vm_port_ingress(a: Attachment) -> Flow:
    """A VM's port belongs to its logical switch: tag the packet with the VNI; then port security."""
    return Flow.of(Table.CLASSIFY, 100, {"in_port": a.ofport},
                   [SetField("tunnel_id", a.vni), Goto(Table.PORT_SECURITY)], f"port:{a.lport}")


@interned
def tunnel_ingress(remote: str, ofport: int) -> Flow:
    """From a VTEP: the VNI came on the wire; switched and routed already at the first hop."""
    return Flow.of(Table.CLASSIFY, 100, {"in_port": ofport},
                   [SetField(REG_FROM_TUNNEL, 1), Goto(Table.L2_LOOKUP)], f"vtep:{remote}")


def arp_snoop_known(a: Attachment, ip: str) -> list[Flow]:
    """A VM's ARP that only repeats its known binding needs no controller; a gratuitous
    ARP still goes up (it may announce a move)."""
    base = {"in_port": a.ofport, "eth_type": ETH_ARP, "arp_spa": ip}
    owner = f"port:{a.lport}"
    return [
        Flow.of(Table.ARP_SNOOP, 110, {**base, "arp_tpa": ip}, [Output("controller")], owner),
        Flow.of(Table.ARP_SNOOP, 100, {**base, "arp_sha": a.mac}, [Goto(Table.ARP_RESPONDER)], owner),
    ]


@interned
def arp_responder(vni: int, ip: str, mac: str, owner: str) -> Flow:
    """ARP suppression: answer a broadcast request for `ip` with `mac`, back out of the
    port it came from (Neutron's install_arp_responder)."""
    return Flow.of(
        Table.ARP_RESPONDER, ARP_RESPONDER_PRIORITY,
        {"tunnel_id": vni, "eth_type": ETH_ARP, "eth_dst": BROADCAST, "arp_op": 1, "arp_tpa": ip},
        [Move("eth_src", "eth_dst"), SetField("eth_src", mac), SetField("arp_op", 2),
         Move("arp_sha", "arp_tha"), Move("arp_spa", "arp_tpa"),
         SetField("arp_sha", mac), SetField("arp_spa", ip), Output("in_port")],
        owner)


@interned
def arp_ask_controller(vni: int) -> Flow:
    """A broadcast request for an IP the flows don't know: ask the controller, like NSX."""
    return Flow.of(Table.ARP_RESPONDER, 50,
                   {"tunnel_id": vni, "eth_type": ETH_ARP, "eth_dst": BROADCAST, "arp_op": 1},
                   [Output("controller")], f"ls:{vni}")


@interned
def unicast_local(vni: int, mac: str, a: Attachment) -> Flow:
    return Flow.of(Table.L2_LOOKUP, 100, {"tunnel_id": vni, "eth_dst": mac},
                   [Output(a.ofport)], f"port:{a.lport}")


@interned
def unicast_to_tunnel(vni: int, mac: str, lport: str, tunnel_ofport: int) -> Flow:
    """Known unicast to a remote VM: the tunnel to its VTEP, key = VNI (already in tunnel_id).
    Never back into a tunnel what came from one."""
    return Flow.of(Table.L2_LOOKUP, 100, {REG_FROM_TUNNEL: 0, "tunnel_id": vni, "eth_dst": mac},
                   [Output(tunnel_ofport)], f"port:{lport}")


def flood(vni: int, local_ports: list[int], tunnel_ports: list[int]) -> list[Flow]:
    """BUM traffic: local ports of the VNI, plus head-end replication to exactly the VTEPs
    that host it (unicast mode). From a tunnel: local ports only. OpenFlow never outputs
    to the in_port, so a frame never goes back where it came from."""
    owner = f"ls:{vni}"
    local = [Output(p) for p in sorted(local_ports)]
    remote = [Output(p) for p in sorted(tunnel_ports)]
    return [
        Flow.of(Table.FLOOD, 100, {REG_FROM_TUNNEL: 0, "tunnel_id": vni}, local + remote, owner),
        Flow.of(Table.FLOOD, 100, {REG_FROM_TUNNEL: 1, "tunnel_id": vni}, local, owner),
    ]


# --- by scope: what one hypervisor needs for one thing (pipeline.py lists the scopes) ------

def port_flows(net: Network, hv: Hypervisor, port: str) -> list[Flow]:
    """A local VM port: onto its switch, and its known bindings past the controller."""
    a = hv.attachments.get(port)
    if a is None:
        return []
    flows = [vm_port_ingress(a)]
    for ip in sorted(net.ips_of(a.vni, a.lport)):
        flows += arp_snoop_known(a, ip)
    return flows


def tunnel_flows(hv: Hypervisor, remote: str) -> list[Flow]:
    ofport = hv.tunnels.get(remote)
    return [tunnel_ingress(remote, ofport)] if ofport is not None else []


def mac_flows(net: Network, hv: Hypervisor, routed: set[int], vni: int, mac: str) -> list[Flow]:
    """Known unicast to `mac` on `vni`, wherever `hv`'s VMs can send on that VNI (their own
    switches and, routed, the switches a router joins to them)."""
    found = net.attachment_of(vni, mac) if vni in routed else None
    if found is None:
        return []
    where, a = found
    if where is hv:
        return [unicast_local(vni, mac, a)]
    if where.name in hv.tunnels:
        return [unicast_to_tunnel(vni, mac, a.lport, hv.tunnels[where.name])]
    return []


def switch_flows(net: Network, hv: Hypervisor, vni: int) -> list[Flow]:
    """A logical switch with local ports: ARP misses to the controller (ARP suppression
    on; off, ARP floods like any broadcast: flood and learn), and flooding."""
    ports = [a.ofport for a in hv.attachments.values() if a.vni == vni]
    if not ports:
        return []
    tunnels = [hv.tunnels[o] for o in net.hosts(vni) if o != hv.name and o in hv.tunnels]
    ask = [arp_ask_controller(vni)] if net.intent.arp_suppression else []
    return ask + flood(vni, ports, tunnels)


def binding_responder(net: Network, local: set[int], vni: int, ip: str) -> list[Flow]:
    """ARP suppression off: ARP floods like any broadcast (flood and learn), but only the
    router can answer for its LIFs."""
    b = net.bindings.get(vni, {}).get(ip)
    if b is None or vni not in local or not (net.intent.arp_suppression or b.source == "lif"):
        return []
    return [arp_responder(vni, ip, b.mac, f"binding:{vni}/{ip}")]


def l2_flows(net: Network, hv: Hypervisor) -> list[Flow]:
    """Every logical-switching flow `hv` needs, given what the controller knows."""
    local = hv.vnis()
    routed = net.routed_vnis(local)
    flows = pipeline_defaults()
    for port in hv.attachments:
        flows += port_flows(net, hv, port)
    for remote in hv.tunnels:
        flows += tunnel_flows(hv, remote)
    for vni in sorted(routed):     # routed packets leave on the destination VNI
        for mac in sorted(net.mac_table(vni)):
            flows += mac_flows(net, hv, routed, vni, mac)
    for vni in sorted(local):
        flows += switch_flows(net, hv, vni)
        for ip in net.bindings[vni]:
            flows += binding_responder(net, local, vni, ip)
    return flows
