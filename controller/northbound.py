"""The northbound API's logic: the controller's tables as rows, and changes to intent.

Reads run in the controller app's thread (api.py hands them to `ctl.call`) and read the
model. Writes are transactions on the controller's database (controller/nbdb.py): each
edits the intent as a dict (the shape `packetwalk apply` sends), the whole result is
checked by controller/intent.py's rules, and only then is the difference written, in one
transaction; then the model follows (`sync_intent`) before the answer goes back, so an
accepted change is live when the caller hears of it. A refused request writes nothing.
"""
from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Network
from typing import Callable, Protocol

from controller.flows import Flow
from controller.intent import Intent, IntentError, LogicalRouter, LogicalSwitch
from controller.model import Hypervisor, Network
from controller.tables import Table


class ApiError(Exception):
    """A refused request; str() is the message for {"detail": ...}."""
    status = 400


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class NoAnswer(ApiError):
    """The controller's thread (or its database) did not answer in time."""
    status = 504


class Controller(Protocol):
    """What the API may use of the controller app."""
    net: Network

    def call(self, fn: Callable): ...                      # run fn(ctl) in the app's thread

    def installed_flows(self, hv: Hypervisor) -> list[Flow]: ...

    def installed_count(self, hv: Hypervisor) -> int: ...     # len(installed_flows(hv)), without the list

    def write_intent(self, edit: Callable[[dict], None], exact: bool = False) -> tuple[Intent, dict]: ...

    def forget_learned(self, vni: int, ip: str) -> bool: ...

    def realized(self) -> dict: ...                       # {"generation": n, "realized": m}

    def wait_realized(self, generation: int, timeout: float) -> bool: ...   # any thread


# --- lookups ---------------------------------------------------------------------------------

def _known(names) -> str:
    return ", ".join(sorted(names)) or "none"


def find_switch(net: Network, key: str) -> LogicalSwitch:
    """A logical switch by name or by VNI."""
    key = str(key)
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
    found = net.intent.router(name)
    if found is None:
        raise NotFound(f"no logical router {name!r} (known: {_known(r.name for r in net.intent.routers)})")
    return found


def find_port(net: Network, name: str):
    found = net.intent.port(name)
    if found is None:
        raise NotFound(f"no logical port {name!r} (known: {_known(p.name for p in net.intent.ports)})")
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
            "openflow": hv.of_connected, "ovsdb": hv.ovsdb_connected, "up": hv.up,
            "attachments": len(hv.attachments), "flows": ctl.installed_count(hv),
            "controller": ctl.owner_of(hv.name) if hasattr(ctl, "owner_of") else None,
            "flow_mods": getattr(ctl, "flow_mods", {}).get(hv.name, 0)}


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
    gateway = net.intent.gateway(sw.name) or (None, None)
    return {"name": sw.name, "vni": sw.vni, "subnet": str(sw.subnet), "router": gateway[0],
            "gateway": None if gateway[1] is None else str(gateway[1]),
            "vteps": [h.name for h in net.vtep_table(sw.vni)], "ports": len(net.mac_table(sw.vni))}


def vtep_table(net: Network, sw: LogicalSwitch) -> dict:
    """NSX's VTEP table: the hypervisors that host ports of the switch (head-end replication goes to these)."""
    return {"switch": sw.name, "vni": sw.vni, "vteps": [
        {"hypervisor": h.name, "vtep_ip": h.vtep_ip, "ports": sum(a.vni == sw.vni for a in h.attachments.values())}
        for h in net.vtep_table(sw.vni)]}


def mac_table(net: Network, sw: LogicalSwitch) -> dict:
    return {"switch": sw.name, "vni": sw.vni, "macs": [
        {"mac": mac, "vm": a.lport, "hypervisor": h.name, "vtep_ip": h.vtep_ip, "port": a.port, "ofport": a.ofport}
        for mac, (h, a) in sorted(net.mac_table(sw.vni).items())]}


def arp_table(net: Network, sw: LogicalSwitch) -> dict:
    table = net.bindings.get(sw.vni, {})
    return {"switch": sw.name, "vni": sw.vni, "bindings": [
        {"ip": ip, "mac": table[ip].mac, "source": table[ip].source} for ip in sorted(table, key=IPv4Address)]}


def router_row(net: Network, r: LogicalRouter) -> dict:
    sw = net.intent.switch
    return {"name": r.name,
            "interfaces": [{"switch": i.switch, "vni": sw(i.switch).vni, "ip": str(i.ip),
                            "subnet": str(sw(i.switch).subnet)} for i in r.interfaces],
            "routes": [{"prefix": str(rt.prefix), "next_hop": str(rt.next_hop)} for rt in r.routes]}


def port_row(net: Network, name: str) -> dict:
    p = find_port(net, name)
    where = next(((h, a) for h in net.hypervisors.values() for a in h.attachments.values() if a.lport == p.name),
                 None)
    vni = net.intent.switch(p.switch).vni
    if where:        # the newest attachment, if the port is on two hypervisors (a move)
        where = net.attachment_of(vni, p.mac) or where
    learned = sorted((b.ip for b in net.learned.values() if b.port == p.name), key=IPv4Address)
    return {"name": p.name, "switch": p.switch, "mac": p.mac, "ips": list(p.ips), "learn": p.learn,
            "trusted": p.trusted, "learned": learned, "up": where is not None,
            "hypervisor": where[0].name if where else None, "interface": where[1].port if where else None}


def learned_rows(net: Network) -> list[dict]:
    return [{"switch": net.switches[b.vni].name, "ip": b.ip, "mac": b.mac, "port": b.port, "learned_at": b.at}
            for (_, _), b in sorted(net.learned.items(), key=lambda kv: (kv[0][0], IPv4Address(kv[0][1])))]


def settings_row(ctl: Controller) -> dict:
    return {"vmac": ctl.net.intent.vmac, "arp_suppression": ctl.net.intent.arp_suppression,
            "generation": getattr(ctl, "generation", 0)}


def conflict_rows(net: Network) -> list[dict]:
    return [{**c, "switch": net.switches[c["vni"]].name} for c in net.conflicts if c["vni"] in net.switches]


# --- changes (in the API's thread: each one database transaction) -------------------------------

def change(ctl: Controller, edit: Callable[[dict], None], removing: bool = False,
           exact: bool = False) -> tuple[Intent, dict]:
    """Apply `edit` to the intent, check the whole result, write it. A rule broken by a
    removal, or a name or address already taken, is a conflict (409); any other broken
    rule a bad request (400); an unknown name in the edit itself a 404."""
    try:
        return ctl.write_intent(edit, exact)
    except IntentError as e:
        raise (Conflict if removing or "already" in e.problem else ApiError)(str(e)) from None


def _entry(d: dict, section: str, match: Callable[[dict], bool], what: str) -> dict:
    found = next((x for x in d[section] if match(x)), None)
    if found is None:                   # gone since the caller looked: another writer
        raise NotFound(f"no {what}")
    return found


def _remove(d: dict, section: str, match: Callable[[dict], bool], what: str) -> None:
    d[section].remove(_entry(d, section, match, what))


def apply_intent(ctl: Controller, body: dict) -> dict:
    """`packetwalk apply`: make the whole intent equal to `body`; say what changed."""
    def edit(d):
        d.clear()
        d.update({k: v for k, v in body.items() if v is not None})
        d.setdefault("vmac", None)
    return change(ctl, edit, exact=True)[1]


def create_switch(ctl: Controller, body: dict) -> dict:
    change(ctl, lambda d: d["logical_switches"].append(body))
    return ctl.call(lambda c: switch_row(c.net, find_switch(c.net, body["name"])))


def update_switch(ctl: Controller, key: str, changes: dict) -> dict:
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise ApiError("nothing to change: give vni and/or subnet")

    def check(c):
        sw = find_switch(c.net, key)
        ports = [a.lport for _, a in c.net.mac_table(sw.vni).values()]
        if changes.get("vni", sw.vni) != sw.vni and ports:
            raise Conflict(f"logical switch {sw.name!r} has attached ports ({_known(ports)}): "
                           "its VNI cannot change under them")
        return sw.name
    name = ctl.call(check)
    change(ctl, lambda d: _entry(d, "logical_switches", lambda s: s["name"] == name,
                                 f"logical switch {name!r}").update(changes))
    return ctl.call(lambda c: switch_row(c.net, find_switch(c.net, name)))


def delete_switch(ctl: Controller, key: str) -> None:
    def check(c):
        net, sw = c.net, find_switch(c.net, key)
        users = [f"logical port {p.name}" for p in net.intent.ports if p.switch == sw.name]
        users += [f"router {r.name} (LIF {i.ip})" for r in net.intent.routers for i in r.interfaces
                  if i.switch == sw.name]
        users += [f"static binding {b.ip}" for b in net.intent.static_bindings if b.switch == sw.name]
        if users:
            raise Conflict(f"logical switch {sw.name!r} is in use by {', '.join(users)}: remove those first")
        return sw.name
    name = ctl.call(check)
    change(ctl, lambda d: _remove(d, "logical_switches", lambda s: s["name"] == name, f"logical switch {name!r}"),
           removing=True)


def add_binding(ctl: Controller, key: str, body: dict) -> dict:
    name = ctl.call(lambda c: find_switch(c.net, key).name)
    ip = str(_ip(body["ip"], "ip"))
    change(ctl, lambda d: d["static_bindings"].append({"switch": name, **body}))
    return ctl.call(lambda c: _binding_row(c.net.bindings[find_switch(c.net, name).vni][ip]))


def _binding_row(b) -> dict:
    return {"ip": b.ip, "mac": b.mac, "source": b.source}


def delete_binding(ctl: Controller, key: str, ip: str) -> None:
    addr = _ip(ip, "ip")

    def check(c):
        sw = find_switch(c.net, key)
        if not any(b.switch == sw.name and b.ip == addr for b in c.net.intent.static_bindings):
            raise NotFound(f"no static binding for {addr} on logical switch {sw.name!r}")
        return sw.name
    name = ctl.call(check)
    change(ctl, lambda d: _remove(d, "static_bindings", lambda b: b["switch"] == name and IPv4Address(b["ip"]) == addr,
                                  f"static binding {addr}"), removing=True)


def create_port(ctl: Controller, body: dict) -> dict:
    switch = ctl.call(lambda c: find_switch(c.net, body["switch"]).name)
    change(ctl, lambda d: d["logical_ports"].append({**body, "switch": switch}))
    return ctl.call(lambda c: port_row(c.net, body["name"]))


def update_port(ctl: Controller, name: str, changes: dict) -> dict:
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise ApiError("nothing to change: give mac, ips, learn and/or trusted")
    ctl.call(lambda c: find_port(c.net, name))
    change(ctl, lambda d: _entry(d, "logical_ports", lambda p: p["name"] == name,
                                 f"logical port {name!r}").update(changes))
    return ctl.call(lambda c: port_row(c.net, name))


def delete_port(ctl: Controller, name: str) -> None:
    ctl.call(lambda c: find_port(c.net, name))
    change(ctl, lambda d: _remove(d, "logical_ports", lambda p: p["name"] == name, f"logical port {name!r}"),
           removing=True)


def forget_learned(ctl: Controller, key: str, ip: str) -> None:
    addr = str(_ip(ip, "ip"))

    def run(c):
        sw = find_switch(c.net, key)
        if not c.forget_learned(sw.vni, addr):
            raise NotFound(f"no learned binding for {addr} on logical switch {sw.name!r}")
    ctl.call(run)


def update_settings(ctl: Controller, changes: dict) -> dict:
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise ApiError("nothing to change: give vmac and/or arp_suppression")
    change(ctl, lambda d: d.update(changes))
    return ctl.call(settings_row)


def _lif(net: Network, body: dict) -> dict:
    """An interface as intent names it: its switch by name (the request may give the VNI)."""
    return {**body, "switch": find_switch(net, body["switch"]).name}


def create_router(ctl: Controller, body: dict) -> dict:
    body = {**body, "interfaces": ctl.call(lambda c: [_lif(c.net, i) for i in body["interfaces"]])}
    change(ctl, lambda d: d["logical_routers"].append(body))
    return ctl.call(lambda c: router_row(c.net, find_router(c.net, body["name"])))


def _router(name: str):
    return lambda d: _entry(d, "logical_routers", lambda r: r["name"] == name, f"logical router {name!r}")


def delete_router(ctl: Controller, name: str) -> None:
    ctl.call(lambda c: find_router(c.net, name))
    change(ctl, lambda d: _remove(d, "logical_routers", lambda r: r["name"] == name, f"logical router {name!r}"),
           removing=True)


def add_interface(ctl: Controller, name: str, body: dict) -> dict:
    lif = ctl.call(lambda c: (find_router(c.net, name), _lif(c.net, body))[1])
    change(ctl, lambda d: _router(name)(d)["interfaces"].append(lif))
    return ctl.call(lambda c: router_row(c.net, find_router(c.net, name)))


def delete_interface(ctl: Controller, name: str, switch: str) -> None:
    def check(c):
        r, sw = find_router(c.net, name), find_switch(c.net, switch).name
        if not any(i.switch == sw for i in r.interfaces):
            raise NotFound(f"logical router {name!r} has no interface on switch {sw!r} "
                           f"(it has: {_known(i.switch for i in r.interfaces)})")
        return sw
    sw = ctl.call(check)
    change(ctl, lambda d: _remove(_router(name)(d), "interfaces", lambda i: i["switch"] == sw,
                                  f"interface on {sw!r}"), removing=True)


def add_route(ctl: Controller, name: str, body: dict) -> dict:
    def check(c):
        r = find_router(c.net, name)
        try:
            prefix = IPv4Network(body["prefix"])
        except ValueError:
            return                          # the intent's rules say what is wrong with it
        if any(rt.prefix == prefix for rt in r.routes):
            raise Conflict(f"logical router {name!r} already has a route to {prefix}: delete it first")
    ctl.call(check)
    change(ctl, lambda d: _router(name)(d)["routes"].append(body))
    return ctl.call(lambda c: router_row(c.net, find_router(c.net, name)))


def delete_route(ctl: Controller, name: str, prefix: str) -> None:
    net_ = _prefix(prefix)

    def check(c):
        r = find_router(c.net, name)
        if not any(rt.prefix == net_ for rt in r.routes):
            raise NotFound(f"logical router {name!r} has no route to {net_} "
                           f"(it has: {_known(str(rt.prefix) for rt in r.routes)})")
    ctl.call(check)
    change(ctl, lambda d: _remove(_router(name)(d), "routes", lambda rt: IPv4Network(rt["prefix"]) == net_,
                                  f"route to {net_}"), removing=True)
