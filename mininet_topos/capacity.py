"""How large a lab this machine can run, decided before anything starts.

The figures are measured on the project's 2-core, 24 GB lab machine (Open vSwitch 3.1,
userspace datapath), one logical switch spanning every hypervisor (a full tunnel mesh):

    hypervisors  start   idle CPU (one core = 100%)   tunnel ends (BFD on)   memory
    8            11 s     3.4 %                          56                  ~0.3 GB
    32           54 s    46 %                           992                  ~1.3 GB   (BFD at 500 ms)
    64           61-93 s 61 % (vswitchds) + 25 % ctl  4,032                  ~2.5 GB   (BFD at 2.1 s)

What grows fastest is the tunnel mesh: every tunnel end runs BFD, so at a fixed interval
idle CPU grows with the square of the hypervisors that share a VNI. The controller slows a
hypervisor's BFD down as its tunnels grow (controller/ovsdb.py bfd_interval_ms: at most 30
packets a second from each), so the mesh's BFD packets grow with the hypervisors instead. Memory per hypervisor is
an ovsdb-server (~8 MB) + an ovs-vswitchd (~21 MB) + a shell; per VM a shell (~4 MB).
A lab above the limits is refused with the reason; below them it starts.
"""
from __future__ import annotations

import dataclasses
import os

MAX_HYPERVISORS = 64          # the largest lab measured to start within its readiness wait (164 s at 64)
BFD_PACKETS_PER_CORE = 1000   # BFD packets a second the mesh may send per core (~1,000/s: ~23 % of one core)
MB_PER_HYPERVISOR = 35
MB_PER_VM = 4
MEMORY_SHARE = 0.5            # never plan to use more than half of what is available


@dataclasses.dataclass(frozen=True)
class Machine:
    cores: int
    available_mb: int

    @classmethod
    def here(cls) -> "Machine":
        return cls(os.cpu_count() or 1, _available_mb())


def tunnel_ends(topo) -> int:
    """Tunnel ports the controller will make: for each hypervisor, one per other hypervisor
    that hosts a VM on a logical switch it can reach (same switch, or joined by a router)."""
    return sum(tunnels(topo).values())


def tunnels(topo) -> dict[str, int]:
    """hypervisor -> the tunnel ports the controller will make on it."""
    joined = {sw.name: {sw.name} for sw in topo.switches}
    for r in topo.routers:
        names = {i.switch for i in r.interfaces}
        for n in names:
            joined[n] |= names
    hosted = {hv.name: {vm.switch for vm in topo.vms if vm.hypervisor == hv.name} for hv in topo.hypervisors}
    reach = {hv: set().union(*(joined[s] for s in sws)) if sws else set() for hv, sws in hosted.items()}
    return {a: sum(1 for b in hosted if a != b and reach[a] & hosted[b]) for a in hosted}


def bfd_packets(topo) -> float:
    """BFD packets a second the whole mesh sends, at the intervals the controller sets."""
    from controller.ovsdb import bfd_interval_ms      # (python-ovs comes with it: only when asked)
    return sum(n * 1000 / bfd_interval_ms(n) for n in tunnels(topo).values() if n)


def too_large(topo, machine: Machine) -> str | None:
    """Why this machine cannot run `topo`, or None if it can."""
    hvs, vms = len(topo.hypervisors), len(topo.vms)
    if hvs > MAX_HYPERVISORS:
        return (f"{hvs} hypervisors; this machine runs at most {MAX_HYPERVISORS} (measured: 64 "
                f"hypervisors take 61-93 s to start on a busy machine and idle at ~86% of a core)")
    ends, rate, budget = tunnel_ends(topo), bfd_packets(topo), BFD_PACKETS_PER_CORE * machine.cores
    if rate > budget:
        return (f"{ends:,} tunnel ends sending {rate:,.0f} BFD packets a second; this machine's {machine.cores} "
                f"cores carry at most {budget:,} ({BFD_PACKETS_PER_CORE:,} per core)")
    need = hvs * MB_PER_HYPERVISOR + vms * MB_PER_VM
    if need > machine.available_mb * MEMORY_SHARE:
        return (f"needs ~{need} MB ({MB_PER_HYPERVISOR} MB per hypervisor, {MB_PER_VM} MB per VM); "
                f"this machine has {machine.available_mb} MB available and a lab may use half")
    return None


def _available_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0
