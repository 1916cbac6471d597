"""The controller's database as a Raft cluster over TLS, on the real lab (`--ssl --nb-cluster 3`):
the members talk Raft and serve clients over SSL only, the controller reaches them with its
certificate (writes through the API land in every member), and a client without a
certificate the members trust is refused."""
from __future__ import annotations

import pytest

from dataplane.pki import stranger
from mininet_topos.checks import CHECKS
from mininet_topos.lab import Lab, wait_for
from mininet_topos.nbcluster import NB_PORT
from mininet_topos.tls_check import jsonrpc_list_dbs, ovsdb_list_dbs
from mininet_topos.topology import load_topology
from tests.lab.conftest import TOPOLOGIES

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def tls_cluster_lab():
    with Lab(load_topology(TOPOLOGIES / "seed.yaml"), nb_cluster=3, ssl=True) as lab:
        yield lab


def test_every_channel_is_encrypted_and_intruders_are_refused(tls_cluster_lab):
    result = CHECKS["tls"](tls_cluster_lab)
    assert result["ok"], result
    assert result["segments_seen"]["database"] > 0 and result["cleartext_segments"]["database"] == 0
    assert {m["raft"].split(":")[0] for m in result["database"].values()} == {"ssl"}


def test_an_api_write_reaches_every_member_over_tls(tls_cluster_lab):
    from mininet_topos.checks_intent import _api, _free_vni
    lab = tls_cluster_lab
    _api(lab, "POST", "/v1/logical-switches", {"name": "tlsw", "vni": _free_vni(lab, 7800), "subnet": "10.197.0.0/24"})
    try:
        for i in range(1, lab.nb.size + 1):
            wait_for(lambda: any(r["name"] == "tlsw" for r in lab.nb.select(i, "Logical_Switch", ["name"])), 10,
                     f"the new switch in {lab.nb.member(i)}")
    finally:
        _api(lab, "DELETE", "/v1/logical-switches/tlsw")


def test_the_database_refuses_clients_without_a_trusted_certificate(tls_cluster_lab):
    lab = tls_cluster_lab
    nb, ip = lab.nb, lab.nb.ip(1)
    ca = str(lab.pki.database_ca)
    assert "Packetwalk" in ovsdb_list_dbs(nb.target(1), lab.pki.database_client, ca)
    outsider = stranger(lab.rundir / "pki" / "test-stranger")
    hv = lab.pki.hypervisors[lab.topo.hypervisors[0].name]
    for answer in (ovsdb_list_dbs(f"tcp:{ip}:{NB_PORT}", None, None), jsonrpc_list_dbs(ip, NB_PORT, None),
                   ovsdb_list_dbs(nb.target(1), outsider, ca), ovsdb_list_dbs(nb.target(1), hv, ca)):
        assert answer.startswith("refused"), answer


def test_the_cluster_loses_no_acknowledged_write_over_tls(tls_cluster_lab):
    result = CHECKS["nb-cluster"](tls_cluster_lab)
    assert result["ok"], result
    assert result["acknowledged_writes_missing"] == [] and result["pings_lost"] == 0
