"""The northbound API and `packetwalk show` against the real controller in the seed lab:
what they read is what the data plane holds, and a change made through the API reaches
every hypervisor's br-int at once, without a restart."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest

from mininet_topos.checks import ping
from mininet_topos.lab import LAB_FILE, wait_for

pytestmark = pytest.mark.root
PACKETWALK = [sys.executable, "-m", "packetwalk.cli"]
VMAC = "02:50:56:56:44:52"
AT_ONCE = 2.0   # s: the API answers once the flow-mods are sent (OVSDB's own refreshes come every 5 s)
DLR1 = {"name": "dlr1", "interfaces": [{"switch": "web", "ip": "10.1.1.1"}, {"switch": "app", "ip": "10.1.2.1"}]}


@pytest.fixture(scope="module")
def lab(seed_lab):
    """This module's own seed lab (module-scoped: up for these tests only)."""
    return seed_lab


@pytest.fixture(scope="module")
def api(lab):
    url = json.loads((lab.rundir / LAB_FILE).read_text())["api"]
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client


def show(*args) -> subprocess.CompletedProcess:
    """`packetwalk show ...` as a user runs it in another shell (it finds the API in lab.json)."""
    return subprocess.run(PACKETWALK + ["show", *args], capture_output=True, text=True, timeout=60)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()[1:]]


def br_int(lab, hv: str) -> str:
    return lab.hv(hv).ovs.sh("ovs-ofctl -O OpenFlow13 dump-flows br-int")


def cookies(lab, hv: str) -> set[int]:
    return {int(c, 16) for c in re.findall(r"cookie=(0x[0-9a-f]+)", br_int(lab, hv))}


def sent(api, hv: str, text: str) -> bool:
    """Whether the controller's flows on `hv` (as it sent them) include `text` (ofctl syntax)."""
    return any(text in f["ofctl"] for f in api.get(f"/v1/hypervisors/{hv}/flows").json()["flows"])


def test_hypervisors_are_connected_with_their_vteps(api):
    hvs = {h["name"]: h for h in api.get("/v1/hypervisors").json()}
    assert set(hvs) == {"hv1", "hv2"}
    assert all(h["openflow"] and h["ovsdb"] for h in hvs.values())
    assert (hvs["hv1"]["vtep_ip"], hvs["hv2"]["vtep_ip"]) == ("192.168.50.1", "192.168.50.2")
    assert hvs["hv1"]["attachments"] == 2 and hvs["hv1"]["flows"] > 0


def test_flows_the_api_lists_are_the_flows_on_br_int(lab, api):
    listed = {int(f["cookie"], 16) for f in api.get("/v1/hypervisors/hv1/flows").json()["flows"]}
    assert listed == cookies(lab, "hv1")


def test_show_vteps_by_name(lab):
    r = show("vteps", "web")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:4] == ["VNI", "Hypervisor", "VTEP-IP", "Ports"]
    assert rows(r.stdout) == [["5001", "hv1", "192.168.50.1", "1"], ["5001", "hv2", "192.168.50.2", "1"]]


def test_show_arp_table_by_vni(lab):
    r = show("arp-table", "5001")
    assert r.returncode == 0, r.stderr
    assert rows(r.stdout) == [["5001", "10.1.1.1", VMAC, "lif"],
                              ["5001", "10.1.1.11", "00:50:56:00:00:01", "port"],     # configured IPs
                              ["5001", "10.1.1.12", "00:50:56:00:00:02", "port"]]


def test_show_tunnels_json_and_an_unknown_switch(lab):
    r = show("tunnels", "hv1", "--json")
    assert r.returncode == 0, r.stderr
    assert '"remote": "hv2"' in r.stdout
    # a lab is ready before BFD says up (it waits for the remote VTEP's MAC, not for BFD's 1 s handshake)
    wait_for(lambda: '"bfd": "up"' in show("tunnels", "hv1", "--json").stdout, 10, "BFD hv1->hv2 up")
    r = show("mac-table", "db")
    assert r.returncode == 1 and r.stderr.startswith("packetwalk: no logical switch 'db'")
    assert "Traceback" not in r.stderr


def test_a_new_lif_reaches_the_data_plane_at_once_and_goes_with_its_deletion(lab, api):
    r = api.post("/v1/logical-switches", json={"name": "db", "vni": 5003, "subnet": "10.1.3.0/24"})
    assert r.status_code == 201, r.text
    r = api.post("/v1/routers/dlr1/interfaces", json={"switch": "db", "ip": "10.1.3.1"})
    assert r.status_code == 201, r.text
    assert sent(api, "hv1", "ip_dst=10.1.3.1,")                  # converged before the API answered
    wait_for(lambda: "nw_dst=10.1.3.1," in br_int(lab, "hv1"), AT_ONCE, "hv1 to answer for the new LIF")
    assert ping(lab.vm("vm1"), "10.1.3.1") == 1                 # the new gateway answers from hv1

    assert api.delete("/v1/routers/dlr1/interfaces/db").status_code == 204
    assert not sent(api, "hv1", "10.1.3.")
    wait_for(lambda: "10.1.3." not in br_int(lab, "hv1"), AT_ONCE, "the LIF's flows to go from hv1")
    assert ping(lab.vm("vm1"), "10.1.3.1") == 0
    assert api.delete("/v1/logical-switches/db").status_code == 204
    assert [s["name"] for s in api.get("/v1/logical-switches").json()] == ["web", "app"]


def test_bad_requests_change_nothing(lab, api):
    def state():
        return (api.get("/v1/logical-switches").json(), api.get("/v1/routers").json(),
                cookies(lab, "hv1"), cookies(lab, "hv2"))
    before = state()
    for method, path, body, status, problem in [
            ("post", "/v1/routers/dlr1/interfaces", {"switch": "app", "ip": "10.1.2.2"}, 409, "already has a gateway"),
            ("post", "/v1/logical-switches", {"name": "db", "vni": 5001, "subnet": "10.1.3.0/24"}, 409,
             "vni 5001 is already used"),
            ("post", "/v1/routers/dlr1/routes", {"prefix": "0.0.0.0/0", "next_hop": "10.9.0.1"}, 400,
             "next hop 10.9.0.1 is unreachable"),
            ("delete", "/v1/logical-switches/web", None, 409, "in use by logical port vm1"),
            ("post", "/v1/logical-switches/web/bindings", {"ip": "10.1.1.11", "mac": "00:50:56:00:99:01"}, 409,
             "ip 10.1.1.11 on switch 'web' is already used by static binding 10.1.1.11")]:
        r = api.request(method, path, json=body)
        assert r.status_code == status and problem in r.json()["detail"], r.text
    assert state() == before


def test_a_deleted_router_stops_routing_and_a_recreated_one_routes_again(lab, api):
    assert ping(lab.vm("vm1"), "10.1.2.13") == 1
    assert api.delete("/v1/routers/dlr1").status_code == 204
    wait_for(lambda: "nw_dst=10.1.1.1," not in br_int(lab, "hv1"), AT_ONCE, "the router's flows to go from hv1")
    assert ping(lab.vm("vm1"), "10.1.2.13") == 0
    assert api.post("/v1/routers", json=DLR1).status_code == 201
    wait_for(lambda: "nw_dst=10.1.1.1," in br_int(lab, "hv1"), AT_ONCE, "the router's flows to come back to hv1")
    assert ping(lab.vm("vm1"), "10.1.2.13") == 1
