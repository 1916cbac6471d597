"""The controller's view of the network: VTEP table, attachments, and bindings per VNI.

Pure state, changed only by the app's thread through the methods below; the flow
modules read it. Names follow NSX: a hypervisor has a VTEP; a VM's port is an
attachment on a logical switch (VNI); a binding is an IP/MAC pair the controller
knows, learned from attachments, ARP snooping or static configuration.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re

from mininet_topos.topology import LogicalSwitch, Topology

LOG = logging.getLogger(__name__)
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
ATTACHMENT_KEYS = {"vm-id", "attached-mac", "logical-switch"}   # a br-int port with these is a VM's


@dataclasses.dataclass(frozen=True)
class Attachment:
    """A VM port on br-int, as its OVSDB external_ids describe it."""
    port: str           # interface name on br-int
    ofport: int
    vm: str
    mac: str
    vni: int


@dataclasses.dataclass
class Hypervisor:
    name: str
    address: str                       # management IP the hypervisor connects from
    vtep_ip: str | None = None
    dpid: int | None = None
    ovsdb_connected: bool = False
    attachments: dict[str, Attachment] = dataclasses.field(default_factory=dict)   # by port
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
    source: str        # "static" | "lif" | "snoop" | "recovered"


class BindingConflict(Exception):
    """A claim on an address that another VM holds (refused, logged, kept for display)."""


class Network:
    def __init__(self, topology: Topology):
        self.hypervisors: dict[str, Hypervisor] = {}
        self.bindings: dict[int, dict[str, Binding]] = {}
        self.conflicts: list[dict] = []
        self._attached_seq: dict[tuple[str, str], int] = {}   # (hv, port) -> when first seen
        self._seq = 0
        self.arp_suppression = True    # off: ARP is flooded (head-end replication) and answered by its target
        self.set_topology(topology)

    def set_topology(self, topology: Topology) -> None:
        """Swap in a new logical topology (already checked by parse_topology).

        Static and LIF bindings are recomputed from it; learned bindings stay on switches
        that still exist while they are host addresses of the subnet and nobody configured
        their IP; removed switches take their bindings, conflicts and attachments with them."""
        learned = self.bindings
        self.topology = topology
        self.switches: dict[int, LogicalSwitch] = {s.vni: s for s in topology.switches}
        self.bindings = {vni: {} for vni in self.switches}
        for b in topology.static_bindings:
            vni = topology.switch(b.switch).vni
            self.bindings[vni][str(b.ip)] = Binding(vni, str(b.ip), b.mac, "static")
        for r in topology.routers:       # a LIF's IP is bound to the vMAC on its switch
            for lif in r.interfaces:
                vni = topology.switch(lif.switch).vni
                self.bindings[vni][str(lif.ip)] = Binding(vni, str(lif.ip), topology.vmac, "lif")
        for vni, table in learned.items():
            for ip, b in table.items():
                if b.source not in ("static", "lif") and vni in self.switches \
                        and ip not in self.bindings[vni] and _is_host(ip, self.switches[vni]):
                    self.bindings[vni][ip] = b
        self.conflicts = [c for c in self.conflicts if c["vni"] in self.switches]
        for hv in self.hypervisors.values():
            hv.attachments = {p: a for p, a in hv.attachments.items() if a.vni in self.switches}

    # --- lookups --------------------------------------------------------------------------
    def switch_by_name(self, name: str) -> LogicalSwitch | None:
        return next((s for s in self.switches.values() if s.name == name), None)

    def attachment_of(self, vni: int, mac: str) -> tuple[Hypervisor, Attachment] | None:
        return self.mac_table(vni).get(mac)

    def set_attachments(self, hv: Hypervisor, attachments: dict[str, Attachment]) -> None:
        for port in attachments.keys() - hv.attachments.keys():
            self._seq += 1
            self._attached_seq[(hv.name, port)] = self._seq
        hv.attachments = attachments

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
        for r in self.topology.routers:
            joined = {self.topology.switch(i.switch).vni for i in r.interfaces}
            if joined & vnis:
                out |= joined
        return out

    def wanted_tunnels(self, hv: Hypervisor) -> dict[str, str]:
        """remote hypervisor -> its VTEP IP, for every VTEP that hosts a VNI `hv`'s VMs can
        reach (same switch, or routed by the distributed router at the first hop)."""
        reach = self.routed_vnis(hv.vnis())
        return {o.name: o.vtep_ip for o in self.hypervisors.values()
                if o is not hv and o.vtep_ip and reach & o.vnis()}

    # --- changes --------------------------------------------------------------------------
    def learn_binding(self, vni: int, ip: str, mac: str) -> bool:
        """A VM's claim of `ip` on switch `vni`. True if the ARP table changed."""
        switch = self.switches.get(vni)
        if switch is None or not _is_host(ip, switch):
            raise BindingConflict(f"{ip} is not a host address of logical switch VNI {vni}'s subnet")
        held = self.bindings[vni].get(ip)
        if held and held.mac == mac:
            return False
        if held and (held.source in ("static", "lif") or self.attachment_of(vni, held.mac)):
            claim = {"vni": vni, "ip": ip, "claimed_by": mac, "held_by": held.mac}
            if claim not in self.conflicts:     # a VM that keeps claiming is listed once
                self.conflicts.append(claim)
            raise BindingConflict(f"VNI {vni}: {ip} is held by {held.mac}; claim by {mac} refused")
        self.bindings[vni][ip] = Binding(vni, ip, mac, "snoop")
        return True


def _is_host(ip: str, switch: LogicalSwitch) -> bool:
    """A usable host address of the switch's subnet (not its network or broadcast address)."""
    addr, subnet = ipaddress.ip_address(ip), switch.subnet
    return addr in subnet and addr not in (subnet.network_address, subnet.broadcast_address)


def parse_attachment(port: str, ofport: int, external_ids: dict, network: Network) -> Attachment:
    """An Attachment from a br-int interface's external_ids; ValueError says what is wrong."""
    missing = [k for k in sorted(ATTACHMENT_KEYS) if not external_ids.get(k)]
    if missing:
        raise ValueError(f"port {port}: external_ids lack {', '.join(missing)}")
    mac = external_ids["attached-mac"].lower()
    if not MAC_RE.match(mac):
        raise ValueError(f"port {port}: attached-mac {mac!r} is not a MAC address")
    switch = network.switch_by_name(external_ids["logical-switch"])
    if switch is None:
        raise ValueError(f"port {port}: unknown logical switch {external_ids['logical-switch']!r}")
    vni = external_ids.get("vni")
    if vni is not None and str(vni) != str(switch.vni):
        raise ValueError(f"port {port}: vni {vni} does not match switch {switch.name} (VNI {switch.vni})")
    if not isinstance(ofport, int) or ofport <= 0:
        raise ValueError(f"port {port}: no OpenFlow port number yet")
    return Attachment(port, ofport, external_ids["vm-id"], mac, switch.vni)
