"""The controller's view of the network: intent, VTEP table, attachments, bindings per VNI.

Pure state, changed only by the app's thread through the methods below; the flow
modules read it. Names follow NSX and OVN: a hypervisor has a VTEP; a VM's interface on
br-int says which logical port it is (external_ids:iface-id, OVN's convention) and becomes
an attachment of that port's logical switch (VNI); a binding is an IP/MAC pair the
controller knows: a port's configured address, a LIF, a static binding, or an address a
"learn the IP" port announced (learned). A configured address always wins over a learned one.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import logging

from controller.intent import Intent, LogicalPort, LogicalSwitch
from controller.mobility import Moves

LOG = logging.getLogger(__name__)
IFACE_ID = "iface-id"          # external_ids key on a br-int interface: the logical port's name
LEARN_LIMIT = 1                # addresses one learn-IP port may hold: a VM cannot squat a subnet
DETACH_HOLD = 10.0             # s a detached port keeps its learned bindings (a VM that moves)


@dataclasses.dataclass(frozen=True)
class Attachment:
    """A logical port bound to an interface on a hypervisor's br-int."""
    port: str           # interface name on br-int
    ofport: int
    lport: str          # the logical port (its name)
    mac: str
    vni: int


@dataclasses.dataclass
class Hypervisor:
    name: str                          # its system-id
    address: str                       # management IP its OVSDB is reached at
    vtep_ip: str | None = None
    dpid: int | None = None
    ovsdb_connected: bool = False
    interfaces: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)  # name -> (ofport, iface-id)
    attachments: dict[str, Attachment] = dataclasses.field(default_factory=dict)   # by interface name
    tunnels: dict[str, int] = dataclasses.field(default_factory=dict)  # remote hypervisor -> ofport
    tunnel_state: dict[str, str] = dataclasses.field(default_factory=dict)  # remote hv -> bfd state

    @property
    def of_connected(self) -> bool:
        return self.dpid is not None

    def vnis(self) -> set[int]:
        return {a.vni for a in self.attachments.values()}


@dataclasses.dataclass(frozen=True)
class Binding:
    vni: int
    ip: str
    mac: str
    source: str                  # "port" | "learned" | "static" | "lif"
    port: str | None = None      # the logical port, for "port" and "learned"
    at: float = 0.0              # when it was learned (seconds since the epoch)


class BindingConflict(Exception):
    """A claim on an address the port may not have (refused, logged, kept for display)."""


class Network:
    def __init__(self, intent: Intent | None = None):
        self.hypervisors: dict[str, Hypervisor] = {}
        self.bindings: dict[int, dict[str, Binding]] = {}
        self.learned: dict[tuple[int, str], Binding] = {}     # (vni, ip) -> learned binding
        self.conflicts: list[dict] = []
        self.detached_at: dict[str, float] = {}               # logical port -> when it left its last hypervisor
        self._attached_seq: dict[tuple[str, str], int] = {}   # (hv, interface) -> when first seen
        self._seq = 0
        self.moves = Moves()                                  # ports changing hypervisors (make-before-break)
        self.set_intent(intent or Intent())

    # --- intent --------------------------------------------------------------------------
    def set_intent(self, intent: Intent) -> None:
        """Swap in a new (checked) intent: bindings and attachments follow it. Learned
        bindings stay while their port exists, still learns, is on the same switch, their IP
        is still a host address of its subnet and no configured address took it."""
        self.intent = intent
        self.switches: dict[int, LogicalSwitch] = {s.vni: s for s in intent.switches}
        self._vni_of = {s.name: s.vni for s in intent.switches}
        for hv in self.hypervisors.values():
            self._bind(hv)
        self._rebuild_bindings()
        self.conflicts = [c for c in self.conflicts if c["vni"] in self.switches]

    def _rebuild_bindings(self) -> None:
        intent = self.intent
        self.bindings = {vni: {} for vni in self.switches}
        for b in intent.static_bindings:
            vni = self._vni_of[b.switch]
            self.bindings[vni][str(b.ip)] = Binding(vni, str(b.ip), b.mac, "static")
        for r in intent.routers:       # a LIF's IP is bound to the vMAC on its switch
            for lif in r.interfaces:
                vni = self._vni_of[lif.switch]
                self.bindings[vni][str(lif.ip)] = Binding(vni, str(lif.ip), intent.vmac, "lif")
        for p in intent.ports:
            vni = self._vni_of[p.switch]
            for ip in p.ips:
                self.bindings[vni][ip] = Binding(vni, ip, p.mac, "port", p.name)
        for (vni, ip), b in list(self.learned.items()):
            port = intent.port(b.port)
            if port is None or not port.learn or self._vni_of.get(port.switch) != vni or port.mac != b.mac \
                    or not _is_host(ip, self.switches[vni]) or ip in self.bindings[vni]:
                del self.learned[(vni, ip)]
                continue
            self.bindings[vni][ip] = b

    def switch_by_name(self, name: str) -> LogicalSwitch | None:
        vni = self._vni_of.get(name)
        return self.switches.get(vni) if vni is not None else None

    # --- hypervisors and their interfaces ------------------------------------------------
    def set_interfaces(self, hv: Hypervisor, interfaces: dict[str, tuple[int, str]], now: float = 0.0) -> None:
        """What hv's br-int holds now (interface -> (ofport, iface-id)); attachments follow."""
        before = {a.lport for a in hv.attachments.values()}
        hv.interfaces = dict(interfaces)
        self._bind(hv)
        self.note_detached(before, now)

    def note_detached(self, lports, now: float) -> None:
        attached = self.attached_ports()
        for lport in lports:
            if lport not in attached:
                self.detached_at.setdefault(lport, now)
        for lport in attached:
            self.detached_at.pop(lport, None)

    def _bind(self, hv: Hypervisor) -> None:
        found = {}
        for name, (ofport, iface_id) in hv.interfaces.items():
            port = self.intent.port(iface_id) if iface_id else None
            if port is None or ofport is None or ofport <= 0:
                continue
            found[name] = Attachment(name, ofport, port.name, port.mac, self._vni_of[port.switch])
        for name in found.keys() - hv.attachments.keys():
            self._seq += 1
            self._attached_seq[(hv.name, name)] = self._seq
        hv.attachments = found

    def unbound(self, hv: Hypervisor) -> dict[str, str]:
        """Interfaces that name a logical port the intent does not have: interface -> iface-id."""
        return {n: i for n, (_, i) in hv.interfaces.items() if i and self.intent.port(i) is None}

    def attached_ports(self) -> set[str]:
        return {a.lport for hv in self.hypervisors.values() for a in hv.attachments.values()}

    def expire_learned(self, now: float, hold: float = DETACH_HOLD) -> bool:
        """Learned bindings of ports detached for longer than `hold` go. True if any went."""
        gone = [k for k, b in self.learned.items()
                if b.port in self.detached_at and now - self.detached_at[b.port] >= hold]
        for key in gone:
            LOG.info("VNI %d: %s forgotten (port %s detached)", key[0], key[1], self.learned[key].port)
            del self.learned[key]
        if gone:
            self._rebuild_bindings()
        return bool(gone)

    # --- lookups --------------------------------------------------------------------------
    def attachment_of(self, vni: int, mac: str) -> tuple[Hypervisor, Attachment] | None:
        return self.mac_table(vni).get(mac)

    def mac_table(self, vni: int) -> dict[str, tuple[Hypervisor, Attachment]]:
        """MAC -> where it is attached. If a MAC shows up in two places (a VM moving),
        the newest attachment wins."""
        table: dict[str, tuple[int, Hypervisor, Attachment]] = {}
        for hv in self.hypervisors.values():
            for a in hv.attachments.values():
                if a.vni != vni:
                    continue
                seq = self._attached_seq.get((hv.name, a.port), 0)
                if a.mac not in table or seq > table[a.mac][0]:
                    table[a.mac] = (seq, hv, a)
        return {mac: (hv, a) for mac, (_, hv, a) in table.items()}

    def lif_ip(self, vni: int) -> str | None:
        """The router's IP on logical switch `vni` (the VMs' default gateway), if any."""
        return next((b.ip for b in self.bindings.get(vni, {}).values() if b.source == "lif"), None)

    def vtep_table(self, vni: int) -> list[Hypervisor]:
        """The hypervisors that host ports of logical switch `vni` (NSX: the VTEP table)."""
        return sorted((h for h in self.hypervisors.values() if vni in h.vnis()), key=lambda h: h.name)

    def routed_vnis(self, vnis: set[int]) -> set[int]:
        """`vnis` plus every VNI a router joins to one of them: where their traffic can go."""
        out = set(vnis)
        for r in self.intent.routers:
            joined = {self._vni_of[i.switch] for i in r.interfaces}
            if joined & vnis:
                out |= joined
        return out

    def wanted_tunnels(self, hv: Hypervisor) -> dict[str, str]:
        """remote hypervisor -> its VTEP IP, for every VTEP that hosts a VNI `hv`'s VMs can
        reach (same switch, or routed by the distributed router at the first hop)."""
        reach = self.routed_vnis(hv.vnis())
        return {o.name: o.vtep_ip for o in self.hypervisors.values()
                if o is not hv and o.vtep_ip and reach & o.vnis()}

    def logical_port(self, a: Attachment) -> LogicalPort:
        return self.intent.port(a.lport)

    # --- changes --------------------------------------------------------------------------
    def learn_binding(self, port: Attachment, ip: str, now: float = 0.0) -> bool:
        """`port` announced `ip` (ARP). True if the ARP table changed. Only a learn-IP port
        learns, only free host addresses of its subnet, at most LEARN_LIMIT of them (a new
        one replaces its oldest); anything else is a BindingConflict."""
        vni, mac = port.vni, port.mac
        lp = self.intent.port(port.lport)
        held = self.bindings.get(vni, {}).get(ip)
        if held and held.mac == mac and held.port == port.lport:
            return False
        if held and (held.source != "learned" or self.attachment_of(vni, held.mac)):
            claim = {"vni": vni, "ip": ip, "claimed_by": mac, "held_by": held.mac}
            if claim not in self.conflicts:     # a VM that keeps claiming is listed once
                self.conflicts.append(claim)
            raise BindingConflict(f"VNI {vni}: {ip} is held by {held.mac} ({held.source}); claim by {mac} refused")
        if lp is None or not lp.learn:
            raise BindingConflict(f"port {port.lport} claims {ip}, which is not one of its addresses")
        switch = self.switches[vni]
        if not _is_host(ip, switch):
            raise BindingConflict(f"port {port.lport} claims {ip}: not a host address of {switch.name} "
                                  f"({switch.subnet})")
        mine = sorted((b for b in self.learned.values() if b.port == port.lport), key=lambda b: b.at)
        for old in mine[:max(0, len(mine) - LEARN_LIMIT + 1)]:
            del self.learned[(old.vni, old.ip)]
        self.learned[(vni, ip)] = Binding(vni, ip, mac, "learned", port.lport, now)
        self._rebuild_bindings()
        return True

    def restore_learned(self, rows: list[dict]) -> None:
        """Learned bindings as the database holds them (a restarted controller)."""
        self.learned = {}
        for r in rows:
            vni = self._vni_of.get(r["switch"])
            if vni is not None:
                self.learned[(vni, r["ip"])] = Binding(vni, r["ip"], r["mac"], "learned", r["port"],
                                                       r["learned_at"] / 1000)
        self._rebuild_bindings()

    def forget_learned(self, vni: int, ip: str) -> bool:
        if self.learned.pop((vni, ip), None) is None:
            return False
        self._rebuild_bindings()
        return True


def _is_host(ip: str, switch: LogicalSwitch) -> bool:
    """A usable host address of the switch's subnet (not its network or broadcast address)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    subnet = switch.subnet
    return addr in subnet and addr not in (subnet.network_address, subnet.broadcast_address)
