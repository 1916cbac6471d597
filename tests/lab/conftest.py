"""The lab layer: real Open vSwitch, real Mininet, the real controller, real packets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mininet_topos.lab import Lab
from mininet_topos.topology import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "mininet_topos"


def bench_processes(rundir: Path, api_ports) -> list[str]:
    """Processes a scale bench started: OVS daemons with their run dir under `rundir`,
    database members whose files are there, controllers serving one of `api_ports`."""
    ports = [str(p).encode() for p in api_ports]
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(e.startswith(f"OVS_RUNDIR={rundir}/".encode()) for e in environ) \
                or any(str(rundir).encode() in arg for arg in cmdline) \
                or (b"controller" in cmdline and any(p in cmdline for p in ports)):
            found.append(f"{pid}: {b' '.join(cmdline).decode(errors='replace')[:80]}")
    return found


def _lab(topology_file: str):
    with Lab(load_topology(TOPOLOGIES / topology_file)) as lab:
        yield lab


# Module-scoped, one per topology: only one lab can run at a time, so a module uses one.
@pytest.fixture(scope="module")
def l2_lab():
    yield from _lab("l2.yaml")


@pytest.fixture(scope="module")
def seed_lab():
    yield from _lab("seed.yaml")


@pytest.fixture(scope="module")
def tenants_lab():
    yield from _lab("tenants.yaml")


@pytest.fixture(scope="module")
def physical_lab():
    yield from _lab("physical.yaml")
