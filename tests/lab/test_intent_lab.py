"""The controller's own database on the real lab: intent survives kill -9, a Raft cluster
loses no acknowledged write when its leader stops, squatting changes nothing, and a change
written straight into the database (ovsdb-client, not the API) reaches the data plane."""
from __future__ import annotations

import pytest

from mininet_topos.checks import CHECKS, ping
from mininet_topos.lab import Lab, wait_for
from mininet_topos.topology import load_topology
from tests.lab.conftest import TOPOLOGIES

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def cluster_lab():
    with Lab(load_topology(TOPOLOGIES / "seed.yaml"), nb_cluster=3) as lab:
        yield lab


@pytest.mark.parametrize("name", ["persistence", "nb-cluster", "squatting"])
def test_database_checks_pass_with_no_ping_lost(cluster_lab, name):
    result = CHECKS[name](cluster_lab)
    assert result["ok"], result
    assert result.get("pings_lost", 0) == 0


def test_a_write_around_the_api_reaches_the_data_plane(cluster_lab):
    """ovsdb-client is a writer like any other: a static binding inserted into the database
    (not through the API) is answered by ARP suppression on the hypervisors."""
    lab = cluster_lab
    vm = lab.topo.vms[0]
    sw = lab.topo.switch(vm.switch)
    ip, mac = str(list(sw.subnet.hosts())[-3]), "00:50:56:0e:00:01"
    row = {"switch": sw.name, "ip": ip, "mac": mac}
    leader = wait_for(lab.nb.leader, 10, "a leader")
    lab.nb.transact(leader, [{"op": "insert", "table": "Static_Binding", "row": row}])
    node = lab.vm(vm.name)
    try:
        wait_for(lambda: mac in node.cmd(f"ip neigh flush dev eth0 to {ip}; arping -c 1 -w 1 -I eth0 {ip}").lower(),
                 15, f"ARP for {ip} answered with {mac} from the hypervisor")
    finally:
        lab.nb.transact(leader, [{"op": "delete", "table": "Static_Binding",
                                  "where": [["switch", "==", sw.name], ["ip", "==", ip]]}])
    assert ping(node, str(lab.topo.vms[1].ip)) == 1
