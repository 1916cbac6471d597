"""How large a lab this machine can run, decided before anything starts.

The figures are measured on the project's 2-core, 24 GB lab machine (Open vSwitch 3.1,
userspace datapath), one logical switch spanning every hypervisor (a full tunnel mesh):

    hypervisors  start   idle CPU (one core = 100%)   tunnel ends (BFD on)   memory
    8            11 s     3.4 %                          56                  ~0.3 GB
    32           54 s    46 %                           992                  ~1.3 GB

What grows fastest is the tunnel mesh: every tunnel end runs BFD every 500 ms, so idle
CPU grows with the square of the hypervisors that share a VNI. Memory per hypervisor is
an ovsdb-server (~8 MB) + an ovs-vswitchd (~21 MB) + a shell; per VM a shell (~4 MB).
A lab above the limits is refused with the reason; below them it starts.
"""
from __future__ import annotations

import dataclasses
import os

MAX_HYPERVISORS = 32          # the largest lab measured to start within the lab's 60 s readiness wait
TUNNEL_ENDS_PER_CORE = 500    # ~23 % of one core idle at 32 hypervisors' 992 ends
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
    joined = {sw.name: {sw.name} for sw in topo.switches}
    for r in topo.routers:
        names = {i.switch for i in r.interfaces}
        for n in names:
            joined[n] |= names
    hosted = {hv.name: {vm.switch for vm in topo.vms if vm.hypervisor == hv.name} for hv in topo.hypervisors}
    reach = {hv: set().union(*(joined[s] for s in sws)) if sws else set() for hv, sws in hosted.items()}
    return sum(1 for a in hosted for b in hosted if a != b and reach[a] & hosted[b])


def too_large(topo, machine: Machine) -> str | None:
    """Why this machine cannot run `topo`, or None if it can."""
    hvs, vms = len(topo.hypervisors), len(topo.vms)
    if hvs > MAX_HYPERVISORS:
        return (f"{hvs} hypervisors; this machine runs at most {MAX_HYPERVISORS} (measured: 32 "
                f"hypervisors take 54 s to start and their tunnel mesh idles at 46% of a core)")
    ends, budget = tunnel_ends(topo), TUNNEL_ENDS_PER_CORE * machine.cores
    if ends > budget:
        return (f"{ends} tunnel ends (each running BFD every 500 ms); this machine's {machine.cores} "
                f"cores carry at most {budget} ({TUNNEL_ENDS_PER_CORE} per core)")
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
