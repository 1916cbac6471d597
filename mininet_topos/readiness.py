"""When is a lab ready, and what is missing while it is not: pure functions of the
topology, where the VMs are, and what the controller (its state file) and the hypervisors
(their VTEP neighbour caches) say. The lab polls them; nothing here waits or reads a clock.

Ready means a first packet gets through: every hypervisor connected to the controller
(OpenFlow and OVSDB) with its VM ports known; every VM's binding in the controller's ARP
table; every tunnel the topology implies made; every hypervisor's br-int holding the flows
the controller sent it (asked of the switch: sent is not installed); and every hypervisor's
userspace datapath knowing the MAC of every VTEP it tunnels to (else it drops the first
packet to a VTEP while it ARPs for it).
"""
from __future__ import annotations

import dataclasses

from mininet_topos.topology import Topology


@dataclasses.dataclass(frozen=True)
class Expectation:
    ports: dict[str, frozenset[str]]             # hypervisor -> the VMs on it
    bindings: dict[str, tuple[str, str, str]]    # VM -> (VNI, IP, MAC)
    tunnels: dict[str, dict[str, str]]           # hypervisor -> remote hypervisor -> its VTEP IP


def expect(topo: Topology, placement: dict[str, str]) -> Expectation:
    """What a ready lab holds, with the VMs where `placement` (VM -> hypervisor) says."""
    ports = {h.name: frozenset(v.name for v in topo.vms if placement[v.name] == h.name) for h in topo.hypervisors}
    bindings = {v.name: (str(topo.switch(v.switch).vni), str(v.ip), v.mac) for v in topo.vms}
    switches = {h: {topo.vm(v).switch for v in vms} for h, vms in ports.items()}
    joined = [{i.switch for i in r.interfaces} for r in topo.routers]

    def reach(hv: str) -> set[str]:          # its switches, and every switch a router joins to them
        out = set(switches[hv])
        for group in joined:
            if group & switches[hv]:
                out |= group
        return out

    tunnels = {a.name: {b.name: str(b.vtep_ip) for b in topo.hypervisors
                        if b.name != a.name and reach(a.name) & switches[b.name]}
               for a in topo.hypervisors}
    return Expectation(ports, bindings, tunnels)


def timeout(topo: Topology) -> float:
    """Seconds a lab of this size may take to get ready, from the moment the controller
    listens (generous: the machine is shared, and the controller's work grows with the
    hypervisors it must tunnel between)."""
    return 30.0 + 2.0 * len(topo.hypervisors) + 0.1 * len(topo.vms)


def echo_misses(topo: Topology) -> int | None:
    """Unanswered OpenFlow echoes (0.5 s apart) after which the controller calls a hypervisor
    down, for a lab of this size; None: the controller's own 3. On a shared machine a big lab's
    controller and switches answer late, and each needless disconnection costs a reconnection
    and a re-read: at 64 hypervisors, 3 misses made 120-134 disconnections during start."""
    hvs = len(topo.hypervisors)
    return None if hvs <= 16 else hvs // 8


def hypervisor_ready(exp: Expectation, state: dict, hv: str) -> bool:
    """Connected both ways, its VM ports known, its flows sent: a VM there can announce itself."""
    h = state.get("hypervisors", {}).get(hv)
    return bool(h and h.get("openflow") and h.get("ovsdb") and h.get("flows")
                and {a["vm"] for a in h.get("attachments", {}).values()} >= exp.ports[hv])


def learned(exp: Expectation, state: dict, vm: str) -> bool:
    vni, ip, mac = exp.bindings[vm]
    return state.get("arp_table", {}).get(vni, {}).get(ip, {}).get("mac") == mac


def missing(exp: Expectation, state: dict) -> list[str]:
    """What the controller's state still lacks, each item saying exactly what."""
    hvs = state.get("hypervisors", {})
    out = []
    for hv, vms in exp.ports.items():
        h = hvs.get(hv)
        if not h:
            out.append(f"{hv}: not seen by the controller")
            continue
        lacks = [what for what, ok in (("OpenFlow", h.get("openflow")), ("OVSDB", h.get("ovsdb"))) if not ok]
        if lacks:
            out.append(f"{hv}: {' and '.join(lacks)} not connected")
            continue
        unknown = sorted(vms - {a["vm"] for a in h.get("attachments", {}).values()})
        if unknown:
            out.append(f"{hv}: ports of {_names(unknown)} not known to the controller")
        if not h.get("flows"):
            out.append(f"{hv}: no flows")
        no_port = sorted(r for r in exp.tunnels[hv] if not h.get("tunnels", {}).get(r, {}).get("ofport"))
        if no_port:
            out.append(f"{hv}: no tunnel port to {_names(no_port)}")
    out += [f"{vm}: binding {exp.bindings[vm][1]} not learned" for vm in sorted(exp.bindings)
            if not learned(exp, state, vm)]
    return out


def stages(exp: Expectation, state: dict, missing_now: list[str]) -> list[str]:
    """The steps of a start the controller's state shows done (progress, and where a start's
    time goes): every hypervisor connected; then everything the controller sends in place."""
    hvs = state.get("hypervisors", {})
    out = []
    if all(hvs.get(hv, {}).get("openflow") and hvs.get(hv, {}).get("ovsdb") for hv in exp.ports):
        out.append("every hypervisor connected (OpenFlow and OVSDB)")
        if not missing_now:
            out.append("the controller has sent every flow and tunnel and learned every binding")
    return out


def unconfirmed(exp: Expectation, state: dict, observed: dict[str, tuple[int, int]]) -> list[str]:
    """Hypervisors whose br-int does not hold what the controller says it sent there yet;
    `observed` is hypervisor -> (our flows, tunnel ports) as the switch itself says."""
    hvs = state.get("hypervisors", {})
    out = []
    for hv in exp.ports:
        flows, tunnels = observed.get(hv, (0, 0))
        sent = hvs.get(hv, {}).get("flows", 0)
        if flows != sent:
            out.append(f"{hv}: br-int holds {flows} of the {sent} flows the controller sent")
        if tunnels < len(exp.tunnels[hv]):
            out.append(f"{hv}: br-int has {tunnels} of its {len(exp.tunnels[hv])} tunnel ports")
    return out


def unresolved(exp: Expectation, neighbours: dict[str, set[str]]) -> list[str]:
    """Tunnels whose remote VTEP's MAC the hypervisor's datapath does not know yet;
    `neighbours` is hypervisor -> the IPs in its `ovs-appctl tnl/neigh/show`."""
    return [f"{hv}: VTEP {ip} of {remote} not resolved" for hv, remotes in exp.tunnels.items()
            for remote, ip in sorted(remotes.items()) if ip not in neighbours.get(hv, set())]


def neighbour_ips(tnl_neigh_show: str) -> set[str]:
    """The IPs in `ovs-appctl tnl/neigh/show` output (after its header line)."""
    return {line.split()[0] for line in tnl_neigh_show.splitlines()[1:] if line.strip() and line[0].isdigit()}


def describe(items: list[str], limit: int = 10) -> str:
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def _names(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
