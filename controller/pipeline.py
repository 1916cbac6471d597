"""Everything one hypervisor's br-int should hold, cut into scopes.

A scope is one thing a hypervisor holds flows for; the incremental engine (engine.py)
recomputes only the scopes a change touches, and the full recompute is every scope:

    ("pipeline",)             table-miss flows
    ("port", port)            a local VM port: classify, ARP snooping past the controller
    ("vtep", remote)          a tunnel from a remote VTEP
    ("switch", vni)           a logical switch with local ports: ARP misses, flooding
    ("mac", vni, mac)         known unicast to a MAC on a switch the local VMs reach
    ("binding", vni, ip)      ARP suppression and next-hop resolution for one binding
    ("router", name)          a distributed router's LIFs and routes
    ("move", port)            a logical port changing hypervisors (mobility.py): hold or forward

Port security (security.py) is part of its port's scope; every scope's punts pass a meter
and its delivery to a local VM port goes through that port's failover group (the last step
of scope_flows, so the engine's flows are what the switch holds).

A scope that no longer applies to the hypervisor yields no flows. A new kind of flow goes
into the scope whose change changes it (engine.py says which changes touch which scopes).
"""
from __future__ import annotations

from typing import Iterator

from controller import l2, l3, mobility, security
from controller.flows import Flow
from controller.model import Hypervisor, Network

Scope = tuple


class View:
    """What the scopes of one hypervisor read more than once: computed once per pass."""
    def __init__(self, net: Network, hv: Hypervisor):
        self.net, self.hv = net, hv
        self.local = hv.vnis()
        self.routed = net.routed_vnis(self.local)


def scopes(view: View) -> Iterator[Scope]:
    net, hv = view.net, view.hv
    yield ("pipeline",)
    for port in hv.attachments:
        yield ("port", port)
    for remote in hv.tunnels:
        yield ("vtep", remote)
    for vni in view.local:
        yield ("switch", vni)
    for vni in view.routed:
        for mac in net.mac_table(vni):
            yield ("mac", vni, mac)
        for ip in net.bindings.get(vni, {}):
            yield ("binding", vni, ip)
    for r in net.intent.routers:
        yield ("router", r.name)
    for m in net.moves:
        yield ("move", m.lport)


def scope_flows(view: View, scope: Scope) -> list[Flow]:
    """The flows of one scope on one hypervisor, as the switch holds them (metered punts,
    local delivery by failover group)."""
    hv = view.hv
    return security.meter_punts(mobility.deliver_by_group(_scope_flows(view, scope), hv), hv)


def _scope_flows(view: View, scope: Scope) -> list[Flow]:
    net, hv, kind = view.net, view.hv, scope[0]
    if kind == "port":
        return l2.port_flows(net, hv, scope[1]) + security.attachment_flows(net, hv.attachments.get(scope[1]))
    if kind == "mac":
        return l2.mac_flows(net, hv, view.routed, scope[1], scope[2])
    if kind == "binding":
        return (l2.binding_responder(net, view.local, scope[1], scope[2])
                + l3.binding_resolve(net, view.local, scope[1], scope[2]))
    if kind == "switch":
        return l2.switch_flows(net, hv, scope[1])
    if kind == "vtep":
        return l2.tunnel_flows(hv, scope[1])
    if kind == "router":
        r = next((r for r in net.intent.routers if r.name == scope[1]), None)
        return l3.router_flows(net, view.local, r) if r else []
    if kind == "move":
        return mobility.move_flows(net, hv, net.moves.by_port.get(scope[1]))
    if kind == "pipeline":
        return l2.pipeline_defaults() + l3.mtu_defaults() + security.defaults() + [mobility.in_transit_default()]
    raise ValueError(f"unknown scope {scope!r}")


def hypervisor_scopes(net: Network, hv: Hypervisor) -> dict[Scope, dict[int, Flow]]:
    """The full recompute: every scope of `hv`, each as cookie -> flow."""
    view = View(net, hv)
    out = {}
    for scope in scopes(view):
        flows = scope_flows(view, scope)
        if flows:
            out[scope] = {f.cookie: f for f in flows}
    return out


def hypervisor_flows(net: Network, hv: Hypervisor) -> list[Flow]:
    return list({c: f for flows in hypervisor_scopes(net, hv).values() for c, f in flows.items()}.values())


def layered_flows(net: Network, hv: Hypervisor) -> list[Flow]:
    """The same flows composed by layer (the oracle of tests/unit/test_engine.py)."""
    flows = l2.l2_flows(net, hv) + l3.l3_flows(net, hv) + security.security_flows(net, hv) \
        + mobility.mobility_flows(net, hv)
    return security.meter_punts(mobility.deliver_by_group(flows, hv), hv)
