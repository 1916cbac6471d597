"""The lab layer: real Open vSwitch, real Mininet, the real controller, real packets."""
from __future__ import annotations

from pathlib import Path

import pytest

from mininet_topos.lab import Lab
from mininet_topos.topology import load_topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "mininet_topos"


@pytest.fixture(scope="module")
def l2_lab():
    with Lab(load_topology(TOPOLOGIES / "l2.yaml")) as lab:
        yield lab


@pytest.fixture(scope="module")
def seed_lab():
    with Lab(load_topology(TOPOLOGIES / "seed.yaml")) as lab:
        yield lab


@pytest.fixture(scope="module")
def tenants_lab():
    with Lab(load_topology(TOPOLOGIES / "tenants.yaml")) as lab:
        yield lab


@pytest.fixture(scope="module")
def physical_lab():
    with Lab(load_topology(TOPOLOGIES / "physical.yaml")) as lab:
        yield lab
