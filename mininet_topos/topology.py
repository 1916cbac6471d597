"""Topology files: read, check and fill in the YAML that describes a lab network.

A topology names the hypervisors, the logical switches (a VXLAN VNI each, or a
VLAN when kind is "physical"), the distributed logical routers with their LIFs,
the VMs and any static IP/MAC bindings. parse_topology() checks everything up
front and fills in the defaults (VTEP and management IPs, VM MACs, the vMAC),
so the rest of packetwalk can trust what it gets. Every problem becomes one
TopologyError: "{file}: {item}: {problem}".
"""
import difflib
import os
import re
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network

import yaml

NAME_RULE = re.compile(r"[a-z][a-z0-9]{0,7}")
NAME_HELP = ("use 1-8 lower-case letters or digits, starting with a letter "
             "(names become Linux interface names with a prefix)")
MAC_RULE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
VNI_RANGE = range(4096, 2**24)      # 0..4095 would be mistaken for VLAN IDs
VLAN_RANGE = range(1, 4095)
KINDS = ("overlay", "physical")
DEFAULT_UNDERLAY = "192.168.50.0/24"
DEFAULT_MANAGEMENT = "169.254.77.0/24"
DEFAULT_VMAC = "02:50:56:56:44:52"
DEFAULT_VM_MAC = "00:50:56:00:{:02x}:{:02x}"   # from the VM's 1-based place in vms


class TopologyError(ValueError):
    """A topology file is unreadable or wrong; str() is the full message."""


@dataclass(frozen=True)
class Hypervisor:
    name: str
    vtep_ip: IPv4Address
    mgmt_ip: IPv4Address


@dataclass(frozen=True)
class LogicalSwitch:
    name: str
    subnet: IPv4Network
    vni: int | None      # overlay
    vlan: int | None     # physical


@dataclass(frozen=True)
class RouterInterface:
    """A LIF: the router's gateway IP on one logical switch."""
    switch: str
    ip: IPv4Address


@dataclass(frozen=True)
class StaticRoute:
    prefix: IPv4Network
    next_hop: IPv4Address


@dataclass(frozen=True)
class LogicalRouter:
    name: str
    interfaces: tuple[RouterInterface, ...]
    routes: tuple[StaticRoute, ...]


@dataclass(frozen=True)
class VM:
    name: str
    hypervisor: str
    switch: str
    ip: IPv4Address
    mac: str
    trusted: bool = False    # forwards for others (an edge or router VM): no port security beyond tagging


@dataclass(frozen=True)
class StaticBinding:
    switch: str
    ip: IPv4Address
    mac: str
    trusted: bool = False    # forwards for others (an edge or router VM): no port security beyond tagging


@dataclass(frozen=True)
class Topology:
    name: str
    kind: str
    source: str
    hypervisors: tuple[Hypervisor, ...]
    switches: tuple[LogicalSwitch, ...]
    routers: tuple[LogicalRouter, ...]
    vms: tuple[VM, ...]
    static_bindings: tuple[StaticBinding, ...]
    underlay: IPv4Network
    management: IPv4Network
    controller_ip: IPv4Address
    vmac: str

    def hypervisor(self, name: str) -> Hypervisor:
        return _find(self.hypervisors, name, "hypervisor")

    def switch(self, name: str) -> LogicalSwitch:
        return _find(self.switches, name, "logical switch")

    def vm(self, name: str) -> VM:
        return _find(self.vms, name, "VM")

    def gateway(self, vm: VM) -> IPv4Address | None:
        """The IP of the router interface (LIF) on the VM's switch, if any."""
        for router in self.routers:
            for lif in router.interfaces:
                if lif.switch == vm.switch:
                    return lif.ip
        return None

    def vms_on(self, hypervisor_name: str) -> tuple[VM, ...]:
        return tuple(vm for vm in self.vms if vm.hypervisor == hypervisor_name)

    def to_dict(self) -> dict:
        """The YAML input shape with every default filled in; addresses as strings."""
        def segment(sw):
            return {"vni": sw.vni} if sw.vni is not None else {"vlan": sw.vlan}
        return {
            "name": self.name, "kind": self.kind, "underlay": str(self.underlay),
            "management": str(self.management), "vmac": self.vmac,
            "hypervisors": [{"name": hv.name, "vtep": str(hv.vtep_ip)} for hv in self.hypervisors],
            "logical_switches": [{"name": sw.name, "subnet": str(sw.subnet), **segment(sw)}
                                 for sw in self.switches],
            "logical_routers": [{
                "name": r.name,
                "interfaces": [{"switch": i.switch, "ip": str(i.ip)} for i in r.interfaces],
                "routes": [{"prefix": str(s.prefix), "next_hop": str(s.next_hop)}
                           for s in r.routes],
            } for r in self.routers],
            "vms": [{"name": vm.name, "hypervisor": vm.hypervisor, "switch": vm.switch,
                     "ip": str(vm.ip), "mac": vm.mac, **({"trusted": True} if vm.trusted else {})}
                    for vm in self.vms],
            "static_bindings": [{"switch": b.switch, "ip": str(b.ip), "mac": b.mac}
                                for b in self.static_bindings],
        }


def intent_dict(topo: Topology) -> dict:
    """The file's logical part as the controller's intent (its API's and `packetwalk apply`'s
    shape): switches, routers, static bindings, and one logical port per VM (its name, MAC
    and IP: a hypervisor interface names it in external_ids:iface-id)."""
    d = topo.to_dict()
    return {"vmac": d["vmac"], "logical_switches": d["logical_switches"],
            "logical_routers": d["logical_routers"], "static_bindings": d["static_bindings"],
            "logical_ports": [{"name": vm["name"], "switch": vm["switch"], "mac": vm["mac"], "ips": [vm["ip"]],
                               "trusted": vm.get("trusted", False)}
                              for vm in d["vms"]]}


def _find(items, name, what):
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"no {what} named {name!r}")


def load_topology(path: str | os.PathLike) -> Topology:
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise TopologyError(f"{source}: cannot read file: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise TopologyError(f"{source}: cannot read file: it is not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except DuplicateKey as err:
        raise TopologyError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        problem = getattr(err, "problem", None) or str(err)
        raise TopologyError(f"{source}: {where}: YAML syntax error: {problem}") from None
    return parse_topology(data, source)


class DuplicateKey(yaml.YAMLError):
    """A mapping that names one key twice (YAML says keys are unique; PyYAML lets the last win)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that a mapping already has."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:       # before merging: a key may override a `<<` merge
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue            # the base class reports unhashable keys itself
                if key in seen:
                    line, first = key_node.start_mark.line + 1, seen[key] + 1
                    raise DuplicateKey(f"line {line}, column {key_node.start_mark.column + 1}: "
                                       f"duplicate key {key!r} (first given on line {first}): "
                                       "each key may appear once in a mapping")
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def parse_topology(data: object, source: str = "<dict>") -> Topology:
    try:
        return _parse(data, source)
    except _Problem as problem:
        raise TopologyError(f"{source}: {problem.item}: {problem.text}") from None


class _Problem(Exception):
    """One validation failure; parse_topology() adds the source."""
    def __init__(self, item: str, text: str):
        super().__init__(item, text)
        self.item, self.text = item, text


def _parse(data, source):
    top = _fields(data, "top level", ["name", "hypervisors", "logical_switches"],
                  ["kind", "underlay", "management", "vmac", "logical_routers", "vms",
                   "static_bindings"])
    name = _name(top["name"], "top level")
    kind = _str(_get(top, "kind", "overlay"), "top level", "kind")
    if kind not in KINDS:
        raise _Problem("top level", f"kind {kind!r} is unknown: use overlay or physical")
    underlay = _network(_get(top, "underlay", DEFAULT_UNDERLAY), "top level", "underlay")
    management = _network(_get(top, "management", DEFAULT_MANAGEMENT), "top level", "management")
    if underlay.overlaps(management):
        raise _Problem("top level", f"underlay {underlay} overlaps management {management}")
    vmac = _mac(_get(top, "vmac", DEFAULT_VMAC), "top level", "vmac")
    net = _Network(kind, underlay, management)
    hypervisors = net.hypervisors(_list(top, "hypervisors", "hypervisors", "hypervisor"))
    switches = net.switches(_list(top, "logical_switches", "logical_switches", "logical switch"))
    vms = net.vms(_list(top, "vms", "vms"), _list(top, "static_bindings", "static_bindings"))
    routers = net.routers(_list(top, "logical_routers", "logical_routers"))
    return Topology(name, kind, source, hypervisors, switches, routers, vms, net.bindings,
                    underlay, management, management.network_address + 1, vmac)


class _Network:
    """Reads the sections in order, remembering what is taken so far."""

    def __init__(self, kind: str, underlay: IPv4Network, management: IPv4Network):
        self.kind, self.underlay, self.management = kind, underlay, management
        self.nodes = {}        # hypervisor and VM names: both become Mininet nodes
        self.hv_names = set()
        self.switch_by_name = {}
        self.ips = {}          # (switch, ip) -> the item holding it
        self.macs = {}         # mac -> the item holding it
        self.bindings = ()

    def _named(self, section, index, raw, required, optional, seen) -> tuple[str, str]:
        """Check an entry that has a name; return (item label, name)."""
        item = _label(section, index, raw)
        _fields(raw, item, required, optional)
        name = _name(raw["name"], item)
        _unique(name, seen, item, f"name {name!r}")
        return item, name

    def _place(self, raw: dict, item: str) -> tuple[LogicalSwitch, IPv4Address]:
        """The switch and IP of a VM, binding or LIF: a usable host address of that switch."""
        switch = self.switch_by_name[_ref(raw["switch"], self.switch_by_name, item, "switch")]
        ip = _address(raw["ip"], item, "ip")
        _host_of(ip, switch.subnet, item, "ip", f"switch {switch.name!r} subnet")
        return switch, ip

    def hypervisors(self, entries: list) -> tuple[Hypervisor, ...]:
        vteps, found = {}, []
        for i, raw in enumerate(entries):
            item, name = self._named("hypervisors", i, raw, ["name"], ["vtep"], self.nodes)
            if raw.get("vtep") is None:
                vtep = self.underlay.network_address + i + 1
                if vtep not in self.underlay or vtep == self.underlay.broadcast_address:
                    raise _Problem(item, f"underlay {self.underlay} has no room for a default "
                                         "vtep: give vtep explicitly or use a larger underlay")
            else:
                vtep = _address(raw["vtep"], item, "vtep")
            _host_of(vtep, self.underlay, item, "vtep", "the underlay")
            _unique(vtep, vteps, item, f"vtep {vtep}")
            found.append(Hypervisor(name, vtep, self.management.network_address + i + 2))
        if self.management.num_addresses - 2 < len(found) + 1:
            raise _Problem("top level", f"management {self.management} is too small for the "
                                        f"controller and {len(found)} hypervisors")
        self.hv_names = {hv.name for hv in found}
        return tuple(found)

    def switches(self, entries: list) -> tuple[LogicalSwitch, ...]:
        names, segments = {}, {}
        for i, raw in enumerate(entries):
            item, name = self._named("logical_switches", i, raw, ["name", "subnet"],
                                     ["vni", "vlan"], names)
            subnet = _network(raw["subnet"], item, "subnet")
            for plane, network in (("underlay", self.underlay), ("management", self.management)):
                if subnet.overlaps(network):
                    raise _Problem(item, f"subnet {subnet} overlaps the {plane} {network}")
            key, number = _segment(raw, self.kind, item)
            _unique(number, segments, item, f"{key} {number}")
            self.switch_by_name[name] = LogicalSwitch(
                name, subnet, number if key == "vni" else None, number if key == "vlan" else None)
        return tuple(self.switch_by_name.values())

    def vms(self, vm_entries: list, binding_entries: list) -> tuple[VM, ...]:
        """VMs and static bindings; default MACs last, so they dodge every explicit one."""
        placed = []
        for i, raw in enumerate(vm_entries):
            item, name = self._named("vms", i, raw, ["name", "hypervisor", "switch", "ip"],
                                     ["mac", "trusted"], self.nodes)
            hypervisor = _ref(raw["hypervisor"], self.hv_names, item, "hypervisor")
            switch, ip = self._place(raw, item)
            _unique((switch.name, ip), self.ips, item, f"ip {ip} on switch {switch.name!r}")
            mac = None if raw.get("mac") is None else _mac(raw["mac"], item)
            if mac:
                _unique(mac, self.macs, item, f"mac {mac}")
            trusted = _get(raw, "trusted", False)
            if not isinstance(trusted, bool):
                raise _Problem(item, f"trusted must be true or false, got {_describe(trusted)}")
            placed.append((item, VM(name, hypervisor, switch.name, ip, mac, trusted)))
        bindings = []
        for i, raw in enumerate(binding_entries):
            item = f"static_bindings[{i}]"
            _fields(raw, item, ["switch", "ip", "mac"])
            switch, ip = self._place(raw, item)
            _unique((switch.name, ip), self.ips, item, f"ip {ip} on switch {switch.name!r}")
            mac = _mac(raw["mac"], item)
            _unique(mac, self.macs, item, f"mac {mac}")
            bindings.append(StaticBinding(switch.name, ip, mac))
        self.bindings = tuple(bindings)
        vms = []
        for index, (item, vm) in enumerate(placed, start=1):
            if vm.mac is None:
                mac = DEFAULT_VM_MAC.format((index >> 8) & 0xFF, index & 0xFF)
                if mac in self.macs:
                    raise _Problem(item, f"default mac {mac} (from its place in vms) is already "
                                         f"used by {self.macs[mac]}: give this VM a mac explicitly")
                self.macs[mac] = item
                vm = replace(vm, mac=mac)
            vms.append(vm)
        return tuple(vms)

    def routers(self, entries: list) -> tuple[LogicalRouter, ...]:
        names, gateways, found = {}, {}, []   # gateways: switch -> (router, LIF item)
        for i, raw in enumerate(entries):
            item, name = self._named("logical_routers", i, raw, ["name", "interfaces"],
                                     ["routes"], names)
            lifs = []
            for j, lif in enumerate(_list(raw, "interfaces", f"{item} interfaces", "interface")):
                where = f"{item} interfaces[{j}]"
                _fields(lif, where, ["switch", "ip"])
                switch, ip = self._place(lif, where)
                if (switch.name, ip) in self.ips:
                    raise _Problem(where, f"ip {ip} on switch {switch.name!r} is already used "
                                          f"by {self.ips[switch.name, ip]}")
                if switch.name in gateways:
                    owner, other = gateways[switch.name]
                    raise _Problem(where, f"switch {switch.name!r} already has a gateway: {other}"
                                          + (" (one LIF per switch)" if owner == name
                                             else " (one switch, one router)"))
                gateways[switch.name] = (name, where)
                lifs.append(RouterInterface(switch.name, ip))
            routes = []
            for j, route in enumerate(_list(raw, "routes", f"{item} routes")):
                where = f"{item} routes[{j}]"
                rt = self._route(name, lifs, route, where)
                if rt.prefix in {self.switch_by_name[lif.switch].subnet for lif in lifs}:
                    raise _Problem(where, f"prefix {rt.prefix} is a connected subnet of {name!r}: "
                                          f"a static route cannot replace it")
                if any(rt.prefix == other.prefix for other in routes):
                    raise _Problem(where, f"prefix {rt.prefix} already has a route on {name!r}")
                routes.append(rt)
            found.append(LogicalRouter(name, tuple(lifs), tuple(routes)))
        return tuple(found)

    def _route(self, router: str, lifs: list, raw, item: str) -> StaticRoute:
        _fields(raw, item, ["prefix", "next_hop"])
        prefix = _network(raw["prefix"], item, "prefix")
        hop = _address(raw["next_hop"], item, "next_hop")
        if any(hop == lif.ip for lif in lifs):
            raise _Problem(item, f"next_hop {hop} is an interface IP of router {router!r} itself")
        connected = [self.switch_by_name[lif.switch].subnet for lif in lifs]
        if not any(hop in subnet for subnet in connected):
            raise _Problem(item, f"next hop {hop} is unreachable: it is not inside any subnet "
                                 f"connected to {router!r} ({', '.join(map(str, connected))})")
        return StaticRoute(prefix, hop)


# --- reading one field -------------------------------------------------------

def _describe(value) -> str:
    """Say what YAML gave us, in YAML words."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float, str)):
        return f"the {_YAML_TYPES[type(value)]} {value!r}"
    return _YAML_TYPES.get(type(value), f"a {type(value).__name__}")


_YAML_TYPES = {type(None): "nothing", dict: "a mapping", list: "a list",
               int: "number", float: "number", str: "string"}


def _get(raw: dict, key: str, default):
    """An optional key; null counts as absent."""
    value = raw.get(key)
    return default if value is None else value


def _fields(raw, item: str, required, optional=()) -> dict:
    """Check that raw is a mapping with all required keys and no unknown ones."""
    if not isinstance(raw, dict):
        raise _Problem(item, f"must be a mapping, got {_describe(raw)}")
    allowed = [*required, *optional]
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            raise _Problem(item, f"unknown key {key!r} ({hint})")
    for key in required:
        if raw.get(key) is None:
            raise _Problem(item, f"missing required key {key!r}" if key not in raw
                           else f"key {key!r} has no value")
    return raw


def _list(raw: dict, key: str, item: str, needs_one: str | None = None) -> list:
    value = raw.get(key)
    if value is None:
        value = []
    if not isinstance(value, list):
        raise _Problem(item, f"must be a list, got {_describe(value)}")
    if needs_one and not value:
        raise _Problem(item, f"at least one {needs_one} is required")
    return value


def _label(section: str, index: int, raw) -> str:
    """vms[2] 'vm3' when the entry has a good name, else just vms[2]."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(name, str) and NAME_RULE.fullmatch(name):
        return f"{section}[{index}] {name!r}"
    return f"{section}[{index}]"


def _str(value, item: str, key: str) -> str:
    if not isinstance(value, str):
        raise _Problem(item, f"{key} must be a string, got {_describe(value)}")
    return value


def _name(value, item: str) -> str:
    if not NAME_RULE.fullmatch(_str(value, item, "name")):
        raise _Problem(item, f"name {value!r} is not a valid name: {NAME_HELP}")
    return value


def _ref(value, known, item: str, what: str) -> str:
    if _str(value, item, what) not in known:
        raise _Problem(item, f"unknown {what} {value!r} (known: {', '.join(sorted(known))})")
    return value


def _unique(key, seen: dict, item: str, what: str):
    """Remember that item holds key; complain if someone already does."""
    if key in seen:
        raise _Problem(item, f"{what} is already used by {seen[key]}")
    seen[key] = item
    return key


def _segment(raw: dict, kind: str, item: str) -> tuple[str, int]:
    """A switch's VNI (overlay) or VLAN (physical); the other key must be absent."""
    if kind == "overlay":
        key, other, valid = "vni", "vlan", VNI_RANGE
    else:
        key, other, valid = "vlan", "vni", VLAN_RANGE
    if raw.get(other) is not None:
        raise _Problem(item, f"{other} is not used when kind is {kind}: give {key} instead")
    value = raw.get(key)
    if value is None:
        raise _Problem(item, f"missing required key {key!r} "
                             f"(kind {kind} gives each switch a {key})")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Problem(item, f"{key} must be a whole number, got {_describe(value)}")
    if value not in valid:
        raise _Problem(item, f"{key} {value} is out of range {valid.start}..{valid.stop - 1}")
    return key, value


def _address(value, item: str, key: str) -> IPv4Address:
    try:
        return IPv4Address(_str(value, item, key))
    except ValueError:
        raise _Problem(item, f"{key} {value!r} is not an IPv4 address") from None


def _network(value, item: str, key: str) -> IPv4Network:
    text = _str(value, item, key)
    try:
        if "/" not in text:
            raise ValueError("no prefix length")
        return IPv4Network(text)
    except ValueError as err:
        if "host bits set" in str(err):
            loose = IPv4Network(text, strict=False)
            raise _Problem(item, f"{key} {text} has host bits set: give the network address, "
                                 f"e.g. {loose}") from None
        raise _Problem(item, f"{key} {text!r} is not an IPv4 subnet like 10.1.1.0/24") from None


def _host_of(ip: IPv4Address, subnet: IPv4Network, item: str, key: str, what: str) -> None:
    """ip must be a usable host address of subnet."""
    if ip not in subnet:
        raise _Problem(item, f"{key} {ip} is outside {what} {subnet}")
    if ip in (subnet.network_address, subnet.broadcast_address):
        role = "network" if ip == subnet.network_address else "broadcast"
        raise _Problem(item, f"{key} {ip} is the {role} address of {what} {subnet}")


def _mac(value, item: str, key: str = "mac") -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise _Problem(item, f"{key} was read by YAML as the number {value}: put the MAC in quotes")
    text = _str(value, item, key).lower()
    if not MAC_RULE.fullmatch(text):
        raise _Problem(item, f"{key} {value!r} is not a MAC address: write six hex pairs "
                             "separated by ':', e.g. 00:50:56:00:00:01")
    if int(text[:2], 16) & 1:
        raise _Problem(item, f"{key} {text} is a multicast MAC (lowest bit of the first octet "
                             "is set): a NIC needs a unicast MAC")
    if text == "00:00:00:00:00:00":
        raise _Problem(item, f"{key} {text} is all zeros: not a usable NIC address")
    return text
