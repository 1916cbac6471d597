"""Generated topologies for measurements: N hypervisors x M VMs each, the seed's logical
network (two logical switches joined by one distributed router), VMs alternating between
the switches. `packetwalk lab` start time and the scale bench are measured on these.

    grid(8, 4)            # a dict parse_topology() accepts
    write_grid(8, 4, dir) # the same as a YAML file (a lab's controller reads its file)
"""
from __future__ import annotations

from pathlib import Path

import yaml

SWITCHES = ({"name": "web", "vni": 5001, "subnet": "10.1.0.0/16"},
            {"name": "app", "vni": 5002, "subnet": "10.2.0.0/16"})


def grid(hypervisors: int, vms_per_hypervisor: int) -> dict:
    """A topology dict: hv1..hvN, vm1..vm(N*M) (vmK on hv((K-1)//M + 1)), web and app
    switches with the router dlr1 as their gateway (.0.1)."""
    if not 1 <= hypervisors <= 250 or not 0 <= vms_per_hypervisor:
        raise ValueError(f"grid: 1..250 hypervisors and >= 0 VMs each, not {hypervisors}x{vms_per_hypervisor}")
    vms = []
    for k in range(hypervisors * vms_per_hypervisor):
        sw = SWITCHES[k % 2]
        host = k // 2 + 10                          # 10.x.0.10, 10.x.0.11, ... per switch
        vms.append({"name": f"vm{k + 1}", "hypervisor": f"hv{k // vms_per_hypervisor + 1}",
                    "switch": sw["name"], "ip": f"10.{k % 2 + 1}.{host // 256}.{host % 256}"})
    return {"name": f"grid{hypervisors}x{vms_per_hypervisor}", "kind": "overlay",
            "hypervisors": [{"name": f"hv{i + 1}"} for i in range(hypervisors)],
            "logical_switches": [dict(s) for s in SWITCHES],
            "logical_routers": [{"name": "dlr1", "interfaces": [
                {"switch": "web", "ip": "10.1.0.1"}, {"switch": "app", "ip": "10.2.0.1"}]}],
            "vms": vms}


def write_grid(hypervisors: int, vms_per_hypervisor: int, directory: str | Path) -> Path:
    path = Path(directory) / f"grid{hypervisors}x{vms_per_hypervisor}.yaml"
    path.write_text(yaml.safe_dump(grid(hypervisors, vms_per_hypervisor), sort_keys=False))
    return path
