"""Intent: what users want the network to be, as the controller's database holds it.

Logical switches (a VNI and a subnet each), logical ports (a MAC and configured IPs, or
"learn the IP"), distributed routers (LIFs and static routes), static bindings (an IP/MAC
with no port: a physical host, an edge) and global settings (the vMAC, ARP suppression).

`parse_intent(d)` checks a whole intent given as a dict (the API's and `packetwalk apply`'s
shape) and returns an Intent, or raises IntentError naming the item and the problem. Every
writer goes through it, so the rules are the same whether a change comes from the API, a
file or a restarted controller reading its database. Pure: no I/O.
"""
from __future__ import annotations

import dataclasses
import re
from ipaddress import IPv4Address, IPv4Network

NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
NAME_HELP = "use 1-64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
MAC_RULE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
VNI_RANGE = range(4096, 2**24)       # below 4096 would be mistaken for VLAN IDs
DEFAULT_VMAC = "02:50:56:56:44:52"
SECTIONS = ("logical_switches", "logical_ports", "logical_routers", "static_bindings")


class IntentError(ValueError):
    """A rule broken; str() is "item: problem"."""

    def __init__(self, item: str, problem: str):
        super().__init__(f"{item}: {problem}")
        self.item, self.problem = item, problem


@dataclasses.dataclass(frozen=True)
class LogicalSwitch:
    name: str
    vni: int
    subnet: IPv4Network


@dataclasses.dataclass(frozen=True)
class LogicalPort:
    name: str
    switch: str
    mac: str
    ips: tuple[str, ...] = ()        # configured addresses: answered from intent, never snooped
    learn: bool = False              # "learn the IP": ARP snooping may bind addresses to it
    trusted: bool = False            # forwards for others (edge, router VM): no port security


@dataclasses.dataclass(frozen=True)
class RouterInterface:
    """A LIF: the router's gateway IP on one logical switch."""
    switch: str
    ip: IPv4Address


@dataclasses.dataclass(frozen=True)
class StaticRoute:
    prefix: IPv4Network
    next_hop: IPv4Address


@dataclasses.dataclass(frozen=True)
class LogicalRouter:
    name: str
    interfaces: tuple[RouterInterface, ...]
    routes: tuple[StaticRoute, ...] = ()


@dataclasses.dataclass(frozen=True)
class StaticBinding:
    switch: str
    ip: IPv4Address
    mac: str


@dataclasses.dataclass(frozen=True)
class Intent:
    switches: tuple[LogicalSwitch, ...] = ()
    ports: tuple[LogicalPort, ...] = ()
    routers: tuple[LogicalRouter, ...] = ()
    static_bindings: tuple[StaticBinding, ...] = ()
    vmac: str = DEFAULT_VMAC
    arp_suppression: bool = True

    def __post_init__(self):
        object.__setattr__(self, "_switch", {s.name: s for s in self.switches})
        object.__setattr__(self, "_port", {p.name: p for p in self.ports})

    def switch(self, name: str) -> LogicalSwitch:
        try:
            return self._switch[name]
        except KeyError:
            raise KeyError(f"no logical switch named {name!r}") from None

    def port(self, name: str) -> LogicalPort | None:
        return self._port.get(name)

    def router(self, name: str) -> LogicalRouter | None:
        return next((r for r in self.routers if r.name == name), None)

    def gateway(self, switch: str) -> tuple[str, IPv4Address] | None:
        """(router, LIF IP) of the router interface on `switch`, if any."""
        return next(((r.name, i.ip) for r in self.routers for i in r.interfaces if i.switch == switch), None)

    def to_dict(self) -> dict:
        return {
            "vmac": self.vmac, "arp_suppression": self.arp_suppression,
            "logical_switches": [{"name": s.name, "vni": s.vni, "subnet": str(s.subnet)} for s in self.switches],
            "logical_ports": [{"name": p.name, "switch": p.switch, "mac": p.mac, "ips": list(p.ips),
                               "learn": p.learn, "trusted": p.trusted} for p in self.ports],
            "logical_routers": [{"name": r.name,
                                 "interfaces": [{"switch": i.switch, "ip": str(i.ip)} for i in r.interfaces],
                                 "routes": [{"prefix": str(rt.prefix), "next_hop": str(rt.next_hop)}
                                            for rt in r.routes]} for r in self.routers],
            "static_bindings": [{"switch": b.switch, "ip": str(b.ip), "mac": b.mac}
                                for b in self.static_bindings],
        }


def parse_intent(d: dict) -> Intent:
    """Check a whole intent; every item's problem names the item (IntentError)."""
    if not isinstance(d, dict):
        raise IntentError("intent", "must be a mapping")
    unknown = set(d) - set(SECTIONS) - {"vmac", "arp_suppression"}
    if unknown:
        raise IntentError("intent", f"unknown key {sorted(unknown)[0]!r} (allowed: vmac, arp_suppression, "
                                    + ", ".join(SECTIONS) + ")")
    c = _Checker(_mac(d.get("vmac") or DEFAULT_VMAC, "settings", "vmac"))
    suppression = d.get("arp_suppression", True)
    if not isinstance(suppression, bool):
        raise IntentError("settings", f"arp_suppression must be true or false, got {suppression!r}")
    switches = tuple(c.switch(i, s) for i, s in enumerate(_list(d, "logical_switches")))
    routers = tuple(c.router(i, r) for i, r in enumerate(_list(d, "logical_routers")))
    bindings = tuple(c.binding(i, b) for i, b in enumerate(_list(d, "static_bindings")))
    ports = tuple(c.port(i, p) for i, p in enumerate(_list(d, "logical_ports")))
    return Intent(switches, ports, routers, bindings, c.vmac, suppression)


class _Checker:
    """Reads the sections in order, remembering what is taken so far."""

    def __init__(self, vmac: str):
        self.vmac = vmac
        self.switches: dict[str, LogicalSwitch] = {}
        self.vnis: dict[int, str] = {}
        self.ips: dict[tuple[str, IPv4Address], str] = {}      # (switch, ip) -> holder
        self.macs: dict[tuple[str, str], str] = {}             # (switch, mac) -> holder
        self.names: dict[str, dict[str, str]] = {s: {} for s in ("router", "port")}
        self.gateways: dict[str, str] = {}                     # switch -> LIF item

    def switch(self, i: int, raw) -> LogicalSwitch:
        item = _label("logical_switches", i, raw)
        _fields(raw, item, ["name", "vni", "subnet"])
        name = _unique_name(raw["name"], item, {s: s for s in self.switches})
        vni = raw["vni"]
        if isinstance(vni, bool) or not isinstance(vni, int):
            raise IntentError(item, f"vni must be a whole number, got {vni!r}")
        if vni not in VNI_RANGE:
            raise IntentError(item, f"vni {vni} is out of range {VNI_RANGE.start}..{VNI_RANGE.stop - 1}")
        if vni in self.vnis:
            raise IntentError(item, f"vni {vni} is already used by logical switch {self.vnis[vni]!r}")
        subnet = _network(raw["subnet"], item, "subnet")
        self.vnis[vni] = name
        self.switches[name] = LogicalSwitch(name, vni, subnet)
        return self.switches[name]

    def _place(self, raw: dict, item: str, holder: str) -> tuple[LogicalSwitch, IPv4Address]:
        """The switch and IP of a port address, binding or LIF: a free host address there."""
        switch = self._switch_of(raw, item)
        ip = _host(raw["ip"], switch, item)
        self._take_ip(switch, ip, item, holder)
        return switch, ip

    def _switch_of(self, raw: dict, item: str) -> LogicalSwitch:
        name = raw["switch"]
        if name not in self.switches:
            raise IntentError(item, f"unknown logical switch {name!r} (known: {', '.join(sorted(self.switches)) or 'none'})")
        return self.switches[name]

    def _take_ip(self, switch, ip, item, holder):
        if (switch.name, ip) in self.ips:
            raise IntentError(item, f"ip {ip} on switch {switch.name!r} is already used by {self.ips[switch.name, ip]}")
        self.ips[switch.name, ip] = holder

    def _take_mac(self, switch: LogicalSwitch, mac: str, item: str, holder: str):
        if mac == self.vmac:
            raise IntentError(item, f"mac {mac} is the routers' vMAC")
        if (switch.name, mac) in self.macs:
            raise IntentError(item, f"mac {mac} on switch {switch.name!r} is already used by {self.macs[switch.name, mac]}")
        self.macs[switch.name, mac] = holder

    def router(self, i: int, raw) -> LogicalRouter:
        item = _label("logical_routers", i, raw)
        _fields(raw, item, ["name", "interfaces"], ["routes"])
        name = _unique_name(raw["name"], item, self.names["router"])
        lifs = []
        for j, lif in enumerate(_list(raw, "interfaces", item)):
            where = f"{item} interfaces[{j}]"
            _fields(lif, where, ["switch", "ip"])
            switch, ip = self._place(lif, where, f"router {name!r}")
            if switch.name in self.gateways:
                raise IntentError(where, f"switch {switch.name!r} already has a gateway: "
                                         f"{self.gateways[switch.name]} (one switch, one router interface)")
            self.gateways[switch.name] = where
            lifs.append(RouterInterface(switch.name, ip))
        if not lifs:
            raise IntentError(item, "at least one interface is required")
        connected = [self.switches[lif.switch].subnet for lif in lifs]
        routes = []
        for j, rt in enumerate(_list(raw, "routes", item)):
            where = f"{item} routes[{j}]"
            _fields(rt, where, ["prefix", "next_hop"])
            prefix = _network(rt["prefix"], where, "prefix")
            hop = _address(rt["next_hop"], where, "next_hop")
            if any(hop == lif.ip for lif in lifs):
                raise IntentError(where, f"next_hop {hop} is an interface IP of router {name!r} itself")
            if not any(hop in subnet for subnet in connected):
                raise IntentError(where, f"next hop {hop} is unreachable: it is not inside any subnet connected "
                                         f"to {name!r} ({', '.join(map(str, connected))})")
            if prefix in connected:
                raise IntentError(where, f"prefix {prefix} is a connected subnet of {name!r}: a static route "
                                         "cannot replace it")
            if any(prefix == other.prefix for other in routes):
                raise IntentError(where, f"prefix {prefix} already has a route on {name!r}")
            routes.append(StaticRoute(prefix, hop))
        return LogicalRouter(name, tuple(lifs), tuple(routes))

    def binding(self, i: int, raw) -> StaticBinding:
        item = f"static_bindings[{i}]"
        _fields(raw, item, ["switch", "ip", "mac"])
        switch, ip = self._place(raw, item, f"static binding {raw.get('ip')}")
        mac = _mac(raw["mac"], item)
        self._take_mac(switch, mac, item, f"static binding {ip}")
        return StaticBinding(switch.name, ip, mac)

    def port(self, i: int, raw) -> LogicalPort:
        item = _label("logical_ports", i, raw)
        _fields(raw, item, ["name", "switch", "mac"], ["ips", "learn", "trusted"])
        name = _unique_name(raw["name"], item, self.names["port"])
        switch = self._switch_of(raw, item)
        mac = _mac(raw["mac"], item)
        self._take_mac(switch, mac, item, f"port {name!r}")
        ips = []
        for ip in raw.get("ips") or []:
            addr = _host(ip, switch, item)
            self._take_ip(switch, addr, item, f"port {name!r}")
            ips.append(str(addr))
        flags = {}
        for flag in ("learn", "trusted"):
            value = raw.get(flag, False)
            if not isinstance(value, bool):
                raise IntentError(item, f"{flag} must be true or false, got {value!r}")
            flags[flag] = value
        return LogicalPort(name, switch.name, mac, tuple(ips), **flags)


# --- one field -------------------------------------------------------------------------------

def _label(section: str, index: int, raw) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"{section}[{index}] {name!r}" if isinstance(name, str) and NAME_RULE.fullmatch(name) \
        else f"{section}[{index}]"


def _list(raw: dict, key: str, item: str = "intent") -> list:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise IntentError(item, f"{key} must be a list, got {type(value).__name__}")
    return value


def _fields(raw, item: str, required, optional=()) -> None:
    if not isinstance(raw, dict):
        raise IntentError(item, f"must be a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in (*required, *optional):
            raise IntentError(item, f"unknown key {key!r} (allowed: {', '.join((*required, *optional))})")
    for key in required:
        if raw.get(key) is None:
            raise IntentError(item, f"missing required key {key!r}")


def _unique_name(value, item: str, seen: dict) -> str:
    if not isinstance(value, str) or not NAME_RULE.fullmatch(value):
        raise IntentError(item, f"name {value!r} is not a valid name: {NAME_HELP}")
    if value in seen:
        raise IntentError(item, f"name {value!r} is already used")
    seen[value] = item
    return value


def _address(value, item: str, key: str) -> IPv4Address:
    try:
        return IPv4Address(value if isinstance(value, str) else "")
    except ValueError:
        raise IntentError(item, f"{key} {value!r} is not an IPv4 address") from None


def _host(value, switch: LogicalSwitch, item: str) -> IPv4Address:
    ip = _address(value, item, "ip")
    if ip not in switch.subnet:
        raise IntentError(item, f"ip {ip} is outside switch {switch.name!r} subnet {switch.subnet}")
    if ip in (switch.subnet.network_address, switch.subnet.broadcast_address):
        role = "network" if ip == switch.subnet.network_address else "broadcast"
        raise IntentError(item, f"ip {ip} is the {role} address of switch {switch.name!r} subnet {switch.subnet}")
    return ip


def _network(value, item: str, key: str) -> IPv4Network:
    text = value if isinstance(value, str) else ""
    try:
        if "/" not in text:
            raise ValueError("no prefix length")
        return IPv4Network(text)
    except ValueError as err:
        if "host bits set" in str(err):
            raise IntentError(item, f"{key} {text} has host bits set: give the network address, "
                                    f"e.g. {IPv4Network(text, strict=False)}") from None
        raise IntentError(item, f"{key} {value!r} is not an IPv4 subnet like 10.1.1.0/24") from None


def _mac(value, item: str, key: str = "mac") -> str:
    text = value.lower() if isinstance(value, str) else ""
    if not MAC_RULE.fullmatch(text):
        raise IntentError(item, f"{key} {value!r} is not a MAC address: six hex pairs separated by ':'")
    if int(text[:2], 16) & 1 or text == "00:00:00:00:00:00":
        raise IntentError(item, f"{key} {text} is not a unicast NIC address")
    return text
