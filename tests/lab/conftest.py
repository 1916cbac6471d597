"""The lab layer: real Open vSwitch, real Mininet, the real controller, real packets."""
from __future__ import annotations

from pathlib import Path

import pytest

from mininet_topos.lab import Lab
from mininet_topos.topology import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "mininet_topos"


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
