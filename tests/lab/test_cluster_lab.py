"""Several controllers on one Raft database, on the real lab: a controller and the database's
leader killed at once are taken over without a lost ping; a joining controller takes its
share by the rule and sends nothing it need not."""
from __future__ import annotations

import pytest

from mininet_topos.checks import CHECKS
from mininet_topos.lab import Lab
from mininet_topos.topology import load_topology
from tests.lab.conftest import TOPOLOGIES

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def cluster_lab():
    with Lab(load_topology(TOPOLOGIES / "seed.yaml"), nb_cluster=3, controllers=3) as lab:
        yield lab


def test_every_hypervisor_has_one_owner_among_the_controllers(cluster_lab):
    from mininet_topos.checks_cluster import _settled
    owners = _settled(cluster_lab)
    assert set(owners) == {h.name for h in cluster_lab.topo.hypervisors}
    assert set(owners.values()) <= set(cluster_lab.controllers)


@pytest.mark.parametrize("name", ["controller-failover", "controller-join"])
def test_cluster_checks_pass_with_no_ping_lost(cluster_lab, name):
    result = CHECKS[name](cluster_lab)
    assert result["ok"], result
    assert result["pings_lost"] == 0 and result["pings_sent"] > 0
