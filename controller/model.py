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
from collections import Counter

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
    up: bool = True                    # False: its switch or its database stopped answering
    interfaces: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)  # name -> (ofport, iface-id)
    attachments: dict[str, Attachment] = dataclasses.field(default_factory=dict)   # by interface name
    tunnels: dict[str, int] = dataclasses.field(default_factory=dict)  # remote hypervisor -> ofport
    tunnel_state: dict[str, str] = dataclasses.field(default_factory=dict)  # remote hv -> bfd state
    restored: bool = False             # known from the controller's database only (restart): not read yet

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
        # Indexes (kept by the methods below): VNI -> hypervisor -> ports on it;
        # VNI -> MAC -> (hv, interface) -> (seq, attachment); (VNI, logical port) -> its IPs.
        self._vni_ports: dict[int, Counter] = {}
        self._macs: dict[int, dict[str, dict[tuple[str, str], tuple[int, Attachment]]]] = {}
        self._ips_of: dict[tuple[int, str], set[str]] = {}
        self._joined: dict[int, frozenset[int]] = {}
        self.changes: list[tuple] = []     # what changed since the engine last looked (engine.py)
        self.intent = None
        self.set_intent(intent or Intent())

    # --- intent --------------------------------------------------------------------------
    def set_intent(self, intent: Intent) -> None:
        """Swap in a new (checked) intent: bindings and attachments follow it. Learned
        bindings stay while their port exists, still learns, is on the same switch, their IP
        is still a host address of its subnet and no configured address took it."""
        self.changes.append(("intent", self.intent))
        self.intent = intent
        self.switches: dict[int, LogicalSwitch] = {s.vni: s for s in intent.switches}
        self._vni_of = {s.name: s.vni for s in intent.switches}
        self._joined = {vni: frozenset({vni}) for vni in self.switches}
        self._lif = {self._vni_of[i.switch]: str(i.ip) for r in intent.routers for i in r.interfaces}
        for r in intent.routers:
            joined = frozenset(self._vni_of[i.switch] for i in r.interfaces)
            for vni in joined:
                self._joined[vni] = self._joined[vni] | joined
        for hv in self.hypervisors.values():
            self._bind(hv)
        self._rebuild_bindings()
        self.conflicts = [c for c in self.conflicts if c["vni"] in self.switches]

    def _rebuild_bindings(self) -> None:
        intent, old = self.intent, self.bindings
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
        self._ips_of = {}
        for vni, table in self.bindings.items():
            for ip, b in table.items():
                if b.port:
                    self._ips_of.setdefault((vni, b.port), set()).add(ip)
        for vni in old.keys() | self.bindings.keys():
            was, now = old.get(vni, {}), self.bindings.get(vni, {})
            for ip in was.keys() | now.keys():
                if was.get(ip) != now.get(ip):
                    self.changes.append(("binding", vni, ip, was.get(ip)))

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

    def restore(self, hypervisors: dict, port_status: dict) -> list[str]:
        """After a restart: the hypervisors the controller's database names (its Hypervisor
        and Port_Status rows, nbdb.NbClient.read()'s shape) that have not been read yet, as
        they were when last reported: their VTEP, their ports (by logical port; ofports
        unknown, so numbered here: only their own flows use them, and those are recomputed
        once they are read). Not read is not down: the others keep their tunnels, flood
        lists and unicast flows toward them until they are read, or the app gives up on them
        (Hypervisor.restored). Returns the names restored."""
        out = []
        for name, row in sorted(hypervisors.items()):
            if name in self.hypervisors or not row.get("vtep_ip"):
                continue
            ports = sorted((s["interface"], lport) for lport, s in port_status.items()
                           if s.get("hypervisor") == name and s.get("interface"))
            hv = self.hypervisors[name] = Hypervisor(name, row.get("address") or "", row["vtep_ip"],
                                                     up=bool(row.get("openflow") and row.get("ovsdb")), restored=True)
            self.set_interfaces(hv, {iface: (i, lport) for i, (iface, lport) in enumerate(ports, start=1)})
            out.append(name)
        return out

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
        old = hv.attachments
        for name in found.keys() - old.keys():
            self._seq += 1
            self._attached_seq[(hv.name, name)] = self._seq
        for name, a in old.items():
            if found.get(name) != a:
                self._vni_ports[a.vni][hv.name] -= 1
                del self._macs[a.vni][a.mac][(hv.name, name)]
        for name, a in found.items():
            if old.get(name) != a:
                self._vni_ports.setdefault(a.vni, Counter())[hv.name] += 1
                seq = self._attached_seq.get((hv.name, name), 0)
                self._macs.setdefault(a.vni, {}).setdefault(a.mac, {})[(hv.name, name)] = (seq, a)
        for name in old.keys() - found.keys():
            self._attached_seq.pop((hv.name, name), None)
        hv.attachments = found
        if found != old:
            self.changes.append(("ports", hv.name, old, found))

    def set_up(self, hv: Hypervisor, up: bool) -> None:
        """A hypervisor stopped (or resumed) answering: while down, its VTEP is in no flood
        list and its MACs in no unicast flow elsewhere (its tunnels stay, for its return)."""
        if hv.up != up:
            hv.up = up
            self.changes.append(("up", hv.name))

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

    # --- lookups (from the indexes) ---------------------------------------------------------
    def attachment_of(self, vni: int, mac: str) -> tuple[Hypervisor, Attachment] | None:
        """Where `mac` is attached on switch `vni`: the newest attachment on a hypervisor
        that is up (a VM moving shows up in two places for a moment)."""
        best = None
        for (name, _), (seq, a) in self._macs.get(vni, {}).get(mac, {}).items():
            hv = self.hypervisors.get(name)
            if hv is not None and hv.up and (best is None or seq > best[0]):
                best = (seq, hv, a)
        return best and best[1:]

    def mac_table(self, vni: int) -> dict[str, tuple[Hypervisor, Attachment]]:
        """MAC -> where it is attached. If a MAC shows up in two places (a VM moving),
        the newest attachment wins."""
        return {mac: found for mac in self._macs.get(vni, {}) if (found := self.attachment_of(vni, mac))}

    def attachments_of_mac(self, vni: int, mac: str) -> list[tuple[str, Attachment]]:
        """Every (hypervisor name, attachment) of `mac` on `vni`, up or not."""
        return [(name, a) for (name, _), (_, a) in self._macs.get(vni, {}).get(mac, {}).items()]

    def ips_of(self, vni: int, lport: str) -> set[str]:
        """The IPs bound to logical port `lport` on switch `vni` (configured or learned)."""
        return self._ips_of.get((vni, lport), set())

    def lif_ip(self, vni: int) -> str | None:
        """The router's IP on logical switch `vni` (the VMs' default gateway), if any."""
        return self._lif.get(vni)

    def hosts(self, vni: int, up_only: bool = True) -> list[str]:
        """Names of the hypervisors with ports on `vni` (up ones only, unless told)."""
        return [n for n, count in self._vni_ports.get(vni, {}).items()
                if count > 0 and (h := self.hypervisors.get(n)) is not None and (h.up or not up_only)]

    def vtep_table(self, vni: int) -> list[Hypervisor]:
        """The hypervisors (up) that host ports of logical switch `vni` (NSX: the VTEP table)."""
        return sorted((self.hypervisors[n] for n in self.hosts(vni)), key=lambda h: h.name)

    def joined(self, vni: int) -> frozenset[int]:
        """`vni` and every VNI a router joins to it."""
        return self._joined.get(vni, frozenset({vni}))

    def routed_vnis(self, vnis: set[int]) -> set[int]:
        """`vnis` plus every VNI a router joins to one of them: where their traffic can go."""
        out = set(vnis)
        for vni in vnis:
            out |= self.joined(vni)
        return out

    def routed_hosts(self, vni: int) -> set[str]:
        """Hypervisors (up) whose VMs can reach switch `vni`, switched or routed."""
        return {n for v in self.joined(vni) for n in self.hosts(v)}

    def wanted_tunnels(self, hv: Hypervisor) -> dict[str, str]:
        """remote hypervisor -> its VTEP IP, for every VTEP that hosts a VNI `hv`'s VMs can
        reach (same switch, or routed by the distributed router at the first hop). A
        hypervisor that is down keeps its tunnels, so that its return is quick. The old and
        new places of a port on the move keep theirs until the move is over (mobility.py)."""
        reach = self.routed_vnis(hv.vnis())
        names = {n for v in reach for n in self.hosts(v, up_only=False)}
        for m in self.moves:      # a port on the move: its places keep their tunnels until it is done
            if hv.name in (m.old, m.new):
                names |= {m.old, m.new} - {None}
            elif m.new is None and m.vni in reach:
                names.add(m.old)       # in transit: its old place holds what is sent to it
        return {n: o.vtep_ip for n in names if n != hv.name and (o := self.hypervisors.get(n)) and o.vtep_ip}

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
        if held and (held.source != "learned" or not self._released(held, now)):
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

    def _released(self, b: Binding, now: float) -> bool:
        """A learned binding another port may take: its port is attached nowhere and left
        DETACH_HOLD ago (a VM in transit keeps its addresses, as expire_learned keeps its
        bindings; a port not seen since a restart starts its hold once the hypervisors are
        read: app._learned_ports_not_back)."""
        since = self.detached_at.get(b.port)
        return not self.attachments_of_mac(b.vni, b.mac) and since is not None and now - since >= DETACH_HOLD

    def restore_learned(self, rows: list[dict]) -> None:
        """Learned bindings as the database holds them (a restarted controller)."""
        self.learned = {}
        for r in rows:
            vni = self._vni_of.get(r["switch"])
            if vni is not None:
                self.learned[(vni, r["ip"])] = _learned(vni, r)
        self._rebuild_bindings()

    def merge_learned(self, rows: list[dict], theirs: set[str]) -> bool:
        """Bindings other controllers learned: for the ports in `theirs` (on hypervisors
        another controller owns) the database's rows replace what this one holds. True if
        the ARP table changed."""
        mine = {k: b for k, b in self.learned.items() if b.port not in theirs}
        for r in rows:
            vni = self._vni_of.get(r["switch"])
            if vni is not None and r["port"] in theirs:
                mine[(vni, r["ip"])] = _learned(vni, r)
        if mine == self.learned:
            return False
        self.learned = mine
        self._rebuild_bindings()
        return True

    def forget_learned(self, vni: int, ip: str) -> bool:
        if self.learned.pop((vni, ip), None) is None:
            return False
        self._rebuild_bindings()
        return True


def _learned(vni: int, row: dict) -> Binding:
    """A learned binding as the database's Learned_Binding row has it."""
    return Binding(vni, row["ip"], row["mac"], "learned", row["port"], row["learned_at"] / 1000)


def _is_host(ip: str, switch: LogicalSwitch) -> bool:
    """A usable host address of the switch's subnet (not its network or broadcast address)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    subnet = switch.subnet
    return addr in subnet and addr not in (subnet.network_address, subnet.broadcast_address)
