"""The northbound API's logic, pure: the controller's tables as rows, and changes to the
logical topology.

Every change is made to the topology as a dict (Topology.to_dict(), the topology file's
shape) and the result goes through parse_topology, so an API request obeys exactly the
rules a topology file does and gets the same message. Nothing changes unless the whole
new topology is good. Everything here runs in the controller app's thread (api.py sends
it there); it reads and changes the model only through the Controller it is given.
"""
from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Network
from typing import Callable, Protocol

from controller.flows import Flow
from controller.model import Hypervisor, Network
from controller.tables import Table
from mininet_topos.topology import LogicalRouter, LogicalSwitch, Topology, TopologyError, parse_topology


class ApiError(Exception):
    """A refused request; str() is the message for {"detail": ...}."""
    status = 400


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class NoAnswer(ApiError):
    """The controller's thread did not run the request in time."""
    status = 504


class Controller(Protocol):
    """What the API may use of the controller app (in the app's thread)."""
    net: Network

    def installed_flows(self, hv: Hypervisor) -> list[Flow]: ...

    def apply_topology(self, topology: Topology) -> None: ...


# --- lookups ---------------------------------------------------------------------------------

def _known(names) -> str:
    return ", ".join(sorted(names)) or "none"


def find_switch(net: Network, key: str) -> LogicalSwitch:
    """A logical switch by name or by VNI."""
    found = net.switches.get(int(key)) if key.isascii() and key.isdecimal() else net.switch_by_name(key)
    if found is None:
        raise NotFound(f"no logical switch {key!r} (known: "
                       f"{_known(f'{s.name} ({s.vni})' for s in net.switches.values())})")
    return found


def find_hypervisor(net: Network, name: str) -> Hypervisor:
    if name not in net.hypervisors:
        raise NotFound(f"no hypervisor {name!r} (connected: {_known(net.hypervisors)})")
    return net.hypervisors[name]


def find_router(net: Network, name: str) -> LogicalRouter:
    found = next((r for r in net.topology.routers if r.name == name), None)
    if found is None:
        raise NotFound(f"no logical router {name!r} (known: {_known(r.name for r in net.topology.routers)})")
    return found


def _ip(value: str, what: str) -> IPv4Address:
    try:
        return IPv4Address(value)
    except ValueError:
        raise ApiError(f"{what} {value!r} is not an IPv4 address") from None


def _prefix(value: str) -> IPv4Network:
    try:
        return IPv4Network(value)
    except ValueError:
        raise ApiError(f"prefix {value!r} is not an IPv4 subnet like 10.9.0.0/16") from None


# --- the controller's tables as rows -----------------------------------------------------

def hypervisor_row(ctl: Controller, hv: Hypervisor) -> dict:
    return {"name": hv.name, "address": hv.address, "vtep_ip": hv.vtep_ip,
            "dpid": None if hv.dpid is None else f"{hv.dpid:016x}",
            "openflow": hv.of_connected, "ovsdb": hv.ovsdb_connected,
            "attachments": len(hv.attachments), "flows": len(ctl.installed_flows(hv))}


def tunnel_rows(net: Network, hv: Hypervisor) -> list[dict]:
    """hv's VXLAN tunnel ports: one per remote VTEP, with its BFD state."""
    remote = {h.name: h.vtep_ip for h in net.hypervisors.values()}
    return [{"remote": name, "remote_vtep_ip": remote.get(name), "ofport": hv.tunnels.get(name), "bfd": bfd}
            for name, bfd in sorted(hv.tunnel_state.items())]


def flow_table(hv: Hypervisor, flows: list[Flow]) -> dict:
    """The controller's flows on hv's br-int: a count per table (in pipeline order) and each flow."""
    counts = Counter(Table(f.table) for f in flows)
    ordered = sorted(flows, key=lambda f: (int(f.table), -f.priority, f.ofctl_match()))
    return {"hypervisor": hv.name, "total": len(flows),
            "tables": {t.name: counts[t] for t in Table},
            "flows": [{"cookie": f"{f.cookie:#018x}", "table": Table(f.table).name, "priority": f.priority,
                       "owner": f.owner, "ofctl": f.ofctl()} for f in ordered]}


def switch_row(net: Network, sw: LogicalSwitch) -> dict:
    gateway = next(((r.name, str(i.ip)) for r in net.topology.routers for i in r.interfaces
                    if i.switch == sw.name), (None, None))
    return {"name": sw.name, "vni": sw.vni, "subnet": str(sw.subnet), "router": gateway[0],
            "gateway": gateway[1], "vteps": [h.name for h in net.vtep_table(sw.vni)],
            "ports": len(net.mac_table(sw.vni))}


def vtep_table(net: Network, sw: LogicalSwitch) -> dict:
    """NSX's VTEP table: the hypervisors that host ports of the switch (head-end replication goes to these)."""
    return {"switch": sw.name, "vni": sw.vni, "vteps": [
        {"hypervisor": h.name, "vtep_ip": h.vtep_ip, "ports": sum(a.vni == sw.vni for a in h.attachments.values())}
        for h in net.vtep_table(sw.vni)]}


def mac_table(net: Network, sw: LogicalSwitch) -> dict:
    return {"switch": sw.name, "vni": sw.vni, "macs": [
        {"mac": mac, "vm": a.vm, "hypervisor": h.name, "vtep_ip": h.vtep_ip, "port": a.port, "ofport": a.ofport}
        for mac, (h, a) in sorted(net.mac_table(sw.vni).items())]}


def arp_table(net: Network, sw: LogicalSwitch) -> dict:
    table = net.bindings.get(sw.vni, {})
    return {"switch": sw.name, "vni": sw.vni, "bindings": [
        {"ip": ip, "mac": table[ip].mac, "source": table[ip].source} for ip in sorted(table, key=IPv4Address)]}


def router_row(net: Network, r: LogicalRouter) -> dict:
    return {"name": r.name,
            "interfaces": [{"switch": i.switch, "vni": net.topology.switch(i.switch).vni, "ip": str(i.ip),
                            "subnet": str(net.topology.switch(i.switch).subnet)} for i in r.interfaces],
            "routes": [{"prefix": str(rt.prefix), "next_hop": str(rt.next_hop)} for rt in r.routes]}


def conflict_rows(net: Network) -> list[dict]:
    return [{**c, "switch": net.switches[c["vni"]].name} for c in net.conflicts if c["vni"] in net.switches]


# --- changes ----------------------------------------------------------------------------------

def change(ctl: Controller, edit: Callable[[dict], None], removing: bool = False) -> Topology:
    """Apply `edit` to a copy of the logical topology; check the result as a topology file
    is checked; swap it in only if it is good. A rule broken by a removal, or a name or
    address already taken, is a conflict (409); any other broken rule is a bad request (400)."""
    current = ctl.net.topology
    wanted = current.to_dict()
    edit(wanted)
    try:
        topology = parse_topology(wanted, current.source)
    except TopologyError as e:
        message = str(e).removeprefix(f"{current.source}: ")
        raise (Conflict if removing or "already" in message else ApiError)(message) from None
    _check_learned(ctl.net, topology)
    ctl.apply_topology(topology)
    return topology


def _check_learned(net: Network, topology: Topology) -> None:
    """A new LIF or static binding may not take an IP that an attached VM holds (learned from its ARP)."""
    configured = [(b.switch, b.ip, b.mac) for b in topology.static_bindings]
    configured += [(i.switch, i.ip, topology.vmac) for r in topology.routers for i in r.interfaces]
    for switch, ip, mac in configured:
        vni = topology.switch(switch).vni
        held = net.bindings.get(vni, {}).get(str(ip))
        if held and held.source not in ("static", "lif") and held.mac != mac and net.attachment_of(vni, held.mac):
            vm = net.attachment_of(vni, held.mac)[1].vm
            raise Conflict(f"ip {ip} on switch {switch!r} is held by VM {vm} ({held.mac}, learned from its ARP)")


def create_switch(ctl: Controller, body: dict) -> dict:
    topology = change(ctl, lambda d: d["logical_switches"].append(body))
    return switch_row(ctl.net, topology.switch(body["name"]))


def update_switch(ctl: Controller, key: str, changes: dict) -> dict:
    sw = find_switch(ctl.net, key)
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise ApiError("nothing to change: give vni and/or subnet")
    ports = [a.vm for _, a in ctl.net.mac_table(sw.vni).values()]
    if changes.get("vni", sw.vni) != sw.vni and ports:
        raise Conflict(f"logical switch {sw.name!r} has attached ports ({_known(ports)}): "
                       "its VNI cannot change under them")

    def edit(d):
        next(s for s in d["logical_switches"] if s["name"] == sw.name).update(changes)
    topology = change(ctl, edit)
    return switch_row(ctl.net, topology.switch(sw.name))


def delete_switch(ctl: Controller, key: str) -> None:
    net = ctl.net
    sw = find_switch(net, key)
    users = [f"VM {v.name}" for v in net.topology.vms if v.switch == sw.name]
    users += [f"router {r.name} (LIF {i.ip})" for r in net.topology.routers for i in r.interfaces
              if i.switch == sw.name]
    users += [f"static binding {b.ip}" for b in net.topology.static_bindings if b.switch == sw.name]
    users += [f"port {a.port} on {h.name}" for h, a in net.mac_table(sw.vni).values()]
    if users:
        raise Conflict(f"logical switch {sw.name!r} is in use by {', '.join(dict.fromkeys(users))}: remove those first")
    change(ctl, lambda d: d["logical_switches"].remove(
        next(s for s in d["logical_switches"] if s["name"] == sw.name)), removing=True)


def add_binding(ctl: Controller, key: str, body: dict) -> dict:
    sw = find_switch(ctl.net, key)
    change(ctl, lambda d: d["static_bindings"].append({"switch": sw.name, **body}))
    binding = ctl.net.bindings[sw.vni][str(_ip(body["ip"], "ip"))]
    return {"ip": binding.ip, "mac": binding.mac, "source": binding.source}


def delete_binding(ctl: Controller, key: str, ip: str) -> None:
    sw = find_switch(ctl.net, key)
    addr = _ip(ip, "ip")
    if not any(b.switch == sw.name and b.ip == addr for b in ctl.net.topology.static_bindings):
        raise NotFound(f"no static binding for {addr} on logical switch {sw.name!r}")
    change(ctl, lambda d: d["static_bindings"].remove(
        next(b for b in d["static_bindings"] if b["switch"] == sw.name and IPv4Address(b["ip"]) == addr)),
        removing=True)


def _router_dict(d: dict, name: str) -> dict:
    return next(r for r in d["logical_routers"] if r["name"] == name)


def _lif(net: Network, body: dict) -> dict:
    """An interface as the topology names it: its switch by name (the request may give the VNI)."""
    return {**body, "switch": find_switch(net, body["switch"]).name}


def create_router(ctl: Controller, body: dict) -> dict:
    body = {**body, "interfaces": [_lif(ctl.net, i) for i in body["interfaces"]]}
    topology = change(ctl, lambda d: d["logical_routers"].append(body))
    return router_row(ctl.net, next(r for r in topology.routers if r.name == body["name"]))


def delete_router(ctl: Controller, name: str) -> None:
    find_router(ctl.net, name)
    change(ctl, lambda d: d["logical_routers"].remove(_router_dict(d, name)), removing=True)


def add_interface(ctl: Controller, name: str, body: dict) -> dict:
    find_router(ctl.net, name)
    lif = _lif(ctl.net, body)
    change(ctl, lambda d: _router_dict(d, name)["interfaces"].append(lif))
    return router_row(ctl.net, find_router(ctl.net, name))


def delete_interface(ctl: Controller, name: str, switch: str) -> None:
    r = find_router(ctl.net, name)
    sw = find_switch(ctl.net, switch).name
    if not any(i.switch == sw for i in r.interfaces):
        raise NotFound(f"logical router {name!r} has no interface on switch {sw!r} "
                       f"(it has: {_known(i.switch for i in r.interfaces)})")
    change(ctl, lambda d: _router_dict(d, name)["interfaces"].remove(
        next(i for i in _router_dict(d, name)["interfaces"] if i["switch"] == sw)), removing=True)


def add_route(ctl: Controller, name: str, body: dict) -> dict:
    r = find_router(ctl.net, name)
    try:
        prefix = IPv4Network(body["prefix"])
    except ValueError:
        prefix = None                       # parse_topology says what is wrong with it
    if any(rt.prefix == prefix for rt in r.routes):
        raise Conflict(f"logical router {name!r} already has a route to {prefix}: delete it first")
    change(ctl, lambda d: _router_dict(d, name)["routes"].append(body))
    return router_row(ctl.net, find_router(ctl.net, name))


def delete_route(ctl: Controller, name: str, prefix: str) -> None:
    r = find_router(ctl.net, name)
    net = _prefix(prefix)
    if not any(rt.prefix == net for rt in r.routes):
        raise NotFound(f"logical router {name!r} has no route to {net} "
                       f"(it has: {_known(str(rt.prefix) for rt in r.routes)})")
    change(ctl, lambda d: _router_dict(d, name)["routes"].remove(
        next(rt for rt in _router_dict(d, name)["routes"] if IPv4Network(rt["prefix"]) == net)), removing=True)
