"""The northbound API with FastAPI's TestClient, over the controller stand-in (northbound_standin.py)
whose calls run inline and whose writes are transactions on a real embedded database: every
endpoint, every refusal (status, a message naming the field or problem, and nothing changed in
the database or the model), and the OpenAPI document."""
from __future__ import annotations

import copy
import queue
import threading
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from controller import northbound as nb
from controller.api import create_api
from controller.model import Binding, BindingConflict, Network
from controller.pipeline import hypervisor_flows
from controller.tables import Table
from northbound_standin import APP, MAC, SPARE, WEB, InlineController, embedded_database
from tests.labnet import port_of


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    with embedded_database(tmp_path_factory.mktemp("nb")) as client:
        yield client


@pytest.fixture
def ctl(db):
    return InlineController(db)          # the database back at the stand-in's intent


@pytest.fixture
def api(ctl):
    return TestClient(create_api(ctl))


def snapshot(ctl):
    """The database's intent and generation, and the model's intent and bindings."""
    db = ctl.nb.read()
    return db["intent"], db["generation"], ctl.net.intent, copy.deepcopy(ctl.net.bindings)


# --- hypervisors ------------------------------------------------------------------------------

def test_hypervisors_show_connection_vtep_ports_and_flows(api, ctl):
    rows = api.get("/v1/hypervisors").json()
    assert [r["name"] for r in rows] == ["hv1", "hv2"]
    assert rows[0] == {"name": "hv1", "address": "169.254.77.2", "vtep_ip": "192.168.50.1",
                       "dpid": "0000000000000001", "openflow": True, "ovsdb": True, "up": True, "attachments": 2, "controller": None,
                       "flow_mods": 0,
                       "flows": len(hypervisor_flows(ctl.net, ctl.net.hypervisors["hv1"]))}
    assert api.get("/v1/hypervisors/hv2").json()["vtep_ip"] == "192.168.50.2"


def test_tunnels_name_the_remote_vtep_its_port_and_bfd_state(api):
    assert api.get("/v1/hypervisors/hv1/tunnels").json() == [
        {"remote": "hv2", "remote_vtep_ip": "192.168.50.2", "ofport": 3, "bfd": "up"}]
    assert api.get("/v1/hypervisors/hv2/tunnels").json()[0]["bfd"] == "down"


def test_flows_are_counted_per_named_table_and_listed_with_cookie_and_owner(api, ctl):
    body = api.get("/v1/hypervisors/hv1/flows").json()
    wanted = hypervisor_flows(ctl.net, ctl.net.hypervisors["hv1"])
    assert body["total"] == len(wanted) == len(body["flows"]) == sum(body["tables"].values())
    assert list(body["tables"]) == [t.name for t in Table]
    assert all(body["tables"][t] == sum(f["table"] == t for f in body["flows"]) for t in body["tables"])
    answered = {f["ofctl"].split("arp_tpa=")[1].split(",")[0] for f in body["flows"] if "arp_tpa=" in f["ofctl"]}
    assert answered == set(ctl.net.bindings[WEB])          # ARP suppression: one responder per binding
    responder = next(f for f in body["flows"] if "arp_tpa=10.1.1.50" in f["ofctl"])
    assert responder["table"] == "ARP_RESPONDER" and responder["owner"] == f"binding:{WEB}/10.1.1.50"
    assert responder["cookie"].startswith("0x7077") and f"cookie={responder['cookie']}" in responder["ofctl"]


@pytest.mark.parametrize("path", ["/v1/hypervisors/hv7", "/v1/hypervisors/hv7/tunnels",
                                  "/v1/hypervisors/hv7/flows"])
def test_unknown_hypervisor_is_404_naming_it_and_the_known_ones(api, path):
    r = api.get(path)
    assert r.status_code == 404 and r.json()["detail"] == "no hypervisor 'hv7' (connected: hv1, hv2)"


# --- logical switches: reading ----------------------------------------------------------------

def test_logical_switches_by_name_or_vni(api):
    rows = api.get("/v1/logical-switches").json()
    assert [(r["name"], r["vni"]) for r in rows] == [("web", WEB), ("app", APP), ("spare", SPARE)]
    web = {"name": "web", "vni": WEB, "subnet": "10.1.1.0/24", "router": "dlr1", "gateway": "10.1.1.1",
           "vteps": ["hv1", "hv2"], "ports": 3}
    assert api.get("/v1/logical-switches/web").json() == web == api.get(f"/v1/logical-switches/{WEB}").json()
    r = api.get("/v1/logical-switches/db")
    assert r.status_code == 404
    assert r.json()["detail"] == "no logical switch 'db' (known: app (5002), spare (5009), web (5001))"


def test_vtep_table(api):
    assert api.get("/v1/logical-switches/web/vteps").json() == {"switch": "web", "vni": WEB, "vteps": [
        {"hypervisor": "hv1", "vtep_ip": "192.168.50.1", "ports": 2},
        {"hypervisor": "hv2", "vtep_ip": "192.168.50.2", "ports": 1}]}
    assert api.get(f"/v1/logical-switches/{SPARE}/vteps").json()["vteps"] == []


def test_mac_table(api):
    macs = api.get(f"/v1/logical-switches/{APP}/mac-table").json()["macs"]
    assert macs == [{"mac": MAC["vm3"], "vm": "vm3", "hypervisor": "hv2", "vtep_ip": "192.168.50.2",
                     "port": "vm3", "ofport": 2}]
    assert len(api.get("/v1/logical-switches/web/mac-table").json()["macs"]) == 3


def test_arp_table_in_address_order_with_each_bindings_source(api):
    rows = api.get("/v1/logical-switches/web/arp-table").json()["bindings"]
    assert [(b["ip"], b["source"]) for b in rows] == [
        ("10.1.1.1", "lif"), ("10.1.1.11", "port"), ("10.1.1.12", "port"), ("10.1.1.50", "static"),
        ("10.1.1.99", "learned")]


@pytest.mark.parametrize("table", ["vteps", "mac-table", "arp-table"])
def test_tables_of_an_unknown_switch_are_404(api, table):
    assert api.get(f"/v1/logical-switches/4242/{table}").status_code == 404


# --- routers and conflicts: reading ---------------------------------------------------------

def test_routers(api):
    dlr1 = {"name": "dlr1", "interfaces": [       # the database holds LIFs by switch: in switch-name order
        {"switch": "app", "vni": APP, "ip": "10.1.2.1", "subnet": "10.1.2.0/24"},
        {"switch": "web", "vni": WEB, "ip": "10.1.1.1", "subnet": "10.1.1.0/24"}],
        "routes": [{"prefix": "0.0.0.0/0", "next_hop": "10.1.2.254"}]}
    assert api.get("/v1/routers").json() == [dlr1]
    assert api.get("/v1/routers/dlr1").json() == dlr1
    r = api.get("/v1/routers/dlr9")
    assert r.status_code == 404 and r.json()["detail"] == "no logical router 'dlr9' (known: dlr1)"


def test_conflicts_list_refused_claims(api, ctl):
    assert api.get("/v1/conflicts").json() == []
    with pytest.raises(BindingConflict):
        ctl.net.learn_binding(port_of(ctl.net, "vm9")[1], "10.1.1.11")      # vm9 claims vm1's address
    assert api.get("/v1/conflicts").json() == [
        {"switch": "web", "vni": WEB, "ip": "10.1.1.11", "claimed_by": MAC["vm9"], "held_by": MAC["vm1"]}]


# --- changes that are good ----------------------------------------------------------------------

def test_create_patch_and_delete_a_logical_switch(api, ctl):
    r = api.post("/v1/logical-switches", json={"name": "db", "vni": 5003, "subnet": "10.1.3.0/24"})
    assert r.status_code == 201 and r.json()["vni"] == 5003 and r.json()["ports"] == 0
    assert ctl.net.switch_by_name("db").vni == 5003 and ctl.net.bindings[5003] == {}
    r = api.patch("/v1/logical-switches/db", json={"vni": 5004, "subnet": "10.1.4.0/24"})
    assert r.status_code == 200 and (r.json()["vni"], r.json()["subnet"]) == (5004, "10.1.4.0/24")
    assert 5003 not in ctl.net.switches and api.get("/v1/logical-switches/5004").status_code == 200
    assert api.delete("/v1/logical-switches/5004").status_code == 204
    assert ctl.net.switch_by_name("db") is None and 5004 not in ctl.net.bindings
    assert ctl.net.bindings[WEB]["10.1.1.99"].source == "learned"    # learned bindings survive changes


def test_add_and_delete_a_static_binding(api, ctl):
    r = api.post("/v1/logical-switches/web/bindings", json={"ip": "10.1.1.60", "mac": "00:50:56:00:99:02"})
    assert r.status_code == 201 and r.json() == {"ip": "10.1.1.60", "mac": "00:50:56:00:99:02", "source": "static"}
    assert ctl.net.bindings[WEB]["10.1.1.60"].source == "static"
    assert api.delete("/v1/logical-switches/5001/bindings/10.1.1.60").status_code == 204
    assert "10.1.1.60" not in ctl.net.bindings[WEB]


def test_a_new_lif_is_in_the_flows_at_once_and_gone_when_deleted(api, ctl):
    api.post("/v1/logical-switches", json={"name": "db", "vni": 5003, "subnet": "10.1.3.0/24"})
    r = api.post("/v1/routers/dlr1/interfaces", json={"switch": "db", "ip": "10.1.3.1"})
    assert r.status_code == 201 and {"switch": "db", "vni": 5003, "ip": "10.1.3.1", "subnet": "10.1.3.0/24"} \
        in r.json()["interfaces"]
    assert ctl.net.bindings[5003]["10.1.3.1"].source == "lif"

    def lif_flows():
        return [f for f in api.get("/v1/hypervisors/hv1/flows").json()["flows"] if "10.1.3.1" in f["ofctl"]]
    assert [f["table"] for f in lif_flows()] == ["L3_INPUT"]       # hv1 answers a ping to the new LIF
    assert api.delete("/v1/routers/dlr1/interfaces/db").status_code == 204
    assert lif_flows() == [] and "10.1.3.1" not in ctl.net.bindings[5003]


def test_create_and_delete_a_router_with_a_route(api, ctl):
    api.post("/v1/routers/dlr1/interfaces", json={"switch": "spare", "ip": "10.1.9.1"})
    api.delete("/v1/routers/dlr1/interfaces/spare")
    api.post("/v1/logical-switches", json={"name": "db", "vni": 5003, "subnet": "10.1.3.0/24"})
    r = api.post("/v1/routers", json={"name": "dlr2", "interfaces": [{"switch": "db", "ip": "10.1.3.1"},
                                                                      {"switch": str(SPARE), "ip": "10.1.9.1"}],
                                      "routes": [{"prefix": "10.8.0.0/16", "next_hop": "10.1.3.254"}]})
    assert r.status_code == 201 and [i["switch"] for i in r.json()["interfaces"]] == ["db", "spare"]
    assert api.get("/v1/routers/dlr2").json()["routes"] == [{"prefix": "10.8.0.0/16", "next_hop": "10.1.3.254"}]
    assert api.delete("/v1/routers/dlr2").status_code == 204
    assert [r["name"] for r in api.get("/v1/routers").json()] == ["dlr1"]
    assert "10.1.9.1" not in ctl.net.bindings[SPARE]


def test_add_and_delete_a_static_route(api):
    r = api.post("/v1/routers/dlr1/routes", json={"prefix": "10.8.0.0/16", "next_hop": "10.1.1.254"})
    assert r.status_code == 201 and r.json()["routes"][-1] == {"prefix": "10.8.0.0/16", "next_hop": "10.1.1.254"}
    assert api.delete("/v1/routers/dlr1/routes", params={"prefix": "10.8.0.0/16"}).status_code == 204
    assert [rt["prefix"] for rt in api.get("/v1/routers/dlr1").json()["routes"]] == ["0.0.0.0/0"]


# --- logical ports, learned bindings, settings, the whole intent ----------------------------------

PORTS = "/v1/logical-ports"
VM7 = {"name": "vm7", "switch": str(APP), "mac": "00:50:56:00:00:07", "ips": ["10.1.2.17"]}


def test_logical_ports_say_what_they_are_and_where_they_are_attached(api):
    assert [r["name"] for r in api.get(PORTS).json()] == ["vm1", "vm2", "vm3", "vm5", "vm9"]
    assert api.get(f"{PORTS}/vm1").json() == {
        "name": "vm1", "switch": "web", "mac": MAC["vm1"], "ips": ["10.1.1.11"], "learn": False, "trusted": False,
        "learned": [], "up": True, "hypervisor": "hv1", "interface": "vm1"}
    vm9 = api.get(f"{PORTS}/vm9").json()
    assert (vm9["ips"], vm9["learn"], vm9["learned"], vm9["hypervisor"]) == ([], True, ["10.1.1.99"], "hv1")
    vm5 = api.get(f"{PORTS}/vm5").json()
    assert (vm5["up"], vm5["hypervisor"], vm5["interface"]) == (False, None, None)


def test_create_patch_and_delete_a_logical_port(api, ctl):
    hv1 = ctl.net.hypervisors["hv1"]
    ctl.net.set_interfaces(hv1, {**hv1.interfaces, "tap7": (7, "vm7")})      # names a port not made yet
    assert "tap7" not in hv1.attachments
    r = api.post(PORTS, json=VM7)
    assert r.status_code == 201 and r.json() == {**VM7, "switch": "app", "learn": False, "trusted": False,
                                                 "learned": [], "up": True, "hypervisor": "hv1", "interface": "tap7"}
    assert ctl.net.bindings[APP]["10.1.2.17"] == Binding(APP, "10.1.2.17", VM7["mac"], "port", "vm7")

    def answered():
        return {f["ofctl"].split("arp_tpa=")[1].split(",")[0] for f in api.get("/v1/hypervisors/hv1/flows").json()
                ["flows"] if "tun_id=5002" in f["ofctl"] and "arp_tpa=" in f["ofctl"]}
    assert "10.1.2.17" in answered()                           # ARP suppression from intent, no snooping
    r = api.patch(f"{PORTS}/vm7", json={"ips": ["10.1.2.18"], "trusted": True})
    assert r.status_code == 200 and (r.json()["ips"], r.json()["trusted"]) == (["10.1.2.18"], True)
    assert "10.1.2.17" not in ctl.net.bindings[APP] and "10.1.2.17" not in answered()
    assert ctl.net.bindings[APP]["10.1.2.18"].port == "vm7"
    assert api.delete(f"{PORTS}/vm7").status_code == 204
    assert "tap7" not in hv1.attachments and ctl.net.unbound(hv1) == {"tap7": "vm7"}
    assert "10.1.2.18" not in ctl.net.bindings[APP] and api.get(f"{PORTS}/vm7").status_code == 404
    assert "vm7" not in [p["name"] for p in ctl.nb.read()["intent"]["logical_ports"]]


@pytest.mark.parametrize("path, body", [
    (PORTS, {"name": "vm8", "switch": "web", "mac": "00:50:56:00:00:08", "ips": ["10.1.1.99"]}),
    ("/v1/logical-switches/web/bindings", {"ip": "10.1.1.99", "mac": "00:50:56:00:99:02"}),
], ids=["port", "static binding"])
def test_a_configured_address_takes_what_a_learn_port_learned(api, ctl, path, body):
    assert api.post(path, json=body).status_code == 201
    assert ctl.net.bindings[WEB]["10.1.1.99"].mac == body["mac"] and ctl.net.learned == {}
    assert api.get("/v1/learned-bindings").json() == [] and api.get(f"{PORTS}/vm9").json()["learned"] == []


def test_learned_bindings_are_listed_and_can_be_forgotten(api, ctl):
    assert api.get("/v1/learned-bindings").json() == [
        {"switch": "web", "ip": "10.1.1.99", "mac": MAC["vm9"], "port": "vm9", "learned_at": 0.0}]
    assert api.delete(f"/v1/learned-bindings/{WEB}/10.1.1.99").status_code == 204
    assert api.get("/v1/learned-bindings").json() == [] and "10.1.1.99" not in ctl.net.bindings[WEB]
    assert "10.1.1.99" not in [b["ip"] for b in api.get("/v1/logical-switches/web/arp-table").json()["bindings"]]
    r = api.delete("/v1/learned-bindings/web/10.1.1.99")
    assert r.status_code == 404 and r.json()["detail"] == "no learned binding for 10.1.1.99 on logical switch 'web'"


def test_settings_change_the_vmac_and_arp_suppression(api, ctl):
    generation = ctl.generation
    assert api.get("/v1/settings").json() == {"vmac": "02:50:56:56:44:52", "arp_suppression": True,
                                              "generation": generation}
    r = api.patch("/v1/settings", json={"vmac": "02:00:00:00:00:AA"})
    assert r.status_code == 200 and r.json() == {"vmac": "02:00:00:00:00:aa", "arp_suppression": True,
                                                 "generation": generation + 1}
    assert ctl.net.bindings[WEB]["10.1.1.1"].mac == "02:00:00:00:00:aa"
    assert api.patch("/v1/settings", json={"arp_suppression": False}).json()["arp_suppression"] is False
    answered = {f["ofctl"].split("arp_tpa=")[1].split(",")[0] for f in api.get("/v1/hypervisors/hv1/flows").json()
                ["flows"] if f["table"] == "ARP_RESPONDER" and "arp_tpa=" in f["ofctl"]}
    assert answered == {"10.1.1.1"} and ctl.nb.read()["intent"]["arp_suppression"] is False   # only the LIF


def test_put_intent_makes_the_whole_intent_and_says_what_changed_once(api, ctl):
    body = api.get("/v1/intent").json()
    nothing = {"created": [], "changed": [], "deleted": []}
    generation = ctl.generation
    assert api.put("/v1/intent", json=body).json() == nothing and ctl.generation == generation
    body["logical_ports"] = [p for p in body["logical_ports"] if p["name"] != "vm5"]
    body["logical_switches"] = [s for s in body["logical_switches"] if s["name"] != "spare"] + [
        {"name": "db", "vni": 5003, "subnet": "10.1.3.0/24"}]
    body["logical_ports"][0]["ips"] = ["10.1.1.21"]
    r = api.put("/v1/intent", json=body)
    assert r.status_code == 200 and r.json() == {"created": ["logical switch db"], "changed": ["logical port vm1"],
                                                 "deleted": ["logical switch spare", "logical port vm5"]}
    assert ctl.generation == generation + 1 and sorted(ctl.net.switches) == [WEB, APP, 5003]
    assert ctl.net.bindings[WEB]["10.1.1.21"].port == "vm1" and "10.1.1.11" not in ctl.net.bindings[WEB]
    assert api.put("/v1/intent", json=body).json() == nothing and ctl.generation == generation + 1


# --- refusals: status, a message that names the field/problem, nothing changed -----------------

SW = "/v1/logical-switches"
REFUSED = [
    ("post", SW, {"name": "db", "subnet": "10.1.3.0/24"}, 422, "vni"),
    ("post", SW, {"name": "db", "vni": 5003, "subnet": "10.1.3.0/24", "mtu": 9000}, 422, "mtu"),
    ("post", SW, {"name": "db", "vni": "five", "subnet": "10.1.3.0/24"}, 422, "vni"),
    ("post", SW, {"name": "db", "vni": 99, "subnet": "10.1.3.0/24"}, 400, "vni 99 is out of range 4096..16777215"),
    ("post", SW, {"name": "web", "vni": 5003, "subnet": "10.1.3.0/24"}, 409, "name 'web' is already used"),
    ("post", SW, {"name": "db", "vni": WEB, "subnet": "10.1.3.0/24"}, 409, "vni 5001 is already used"),
    ("post", SW, {"name": "db", "vni": 5003, "subnet": "10.1.3.5/24"}, 400, "subnet 10.1.3.5/24 has host bits set"),
    ("post", SW, {"name": "my db", "vni": 5003, "subnet": "10.1.3.0/24"}, 400, "name 'my db' is not a valid name"),
    ("patch", f"{SW}/web", {"subnet": "10.9.0.0/24"}, 400,
     "logical_routers[0] 'dlr1' interfaces[1]: ip 10.1.1.1 is outside switch 'web' subnet 10.9.0.0/24"),
    ("patch", f"{SW}/web", {"vni": 5003}, 409, "'web' has attached ports (vm1, vm2, vm9)"),
    ("patch", f"{SW}/spare", {"vni": 1}, 400, "vni 1 is out of range"),
    ("patch", f"{SW}/spare", {"vni": APP}, 409, "vni 5002 is already used"),
    ("patch", f"{SW}/spare", {}, 400, "nothing to change"),
    ("patch", f"{SW}/db", {"vni": 5003}, 404, "no logical switch 'db'"),
    ("delete", f"{SW}/web", None, 409, "'web' is in use by logical port vm1, logical port vm2, logical port vm9, "
                                       "router dlr1 (LIF 10.1.1.1), static binding 10.1.1.50: remove those first"),
    ("delete", f"{SW}/spare", None, 409, "in use by logical port vm5"),
    ("delete", f"{SW}/db", None, 404, "no logical switch 'db'"),
    ("post", f"{SW}/web/bindings", {"ip": "10.1.2.5", "mac": "00:50:56:00:99:02"}, 400,
     "ip 10.1.2.5 is outside switch 'web' subnet 10.1.1.0/24"),
    ("post", f"{SW}/web/bindings", {"ip": "10.1.1.11", "mac": "00:50:56:00:99:02"}, 409,
     "logical_ports[0] 'vm1': ip 10.1.1.11 on switch 'web' is already used by static binding 10.1.1.11"),
    ("post", f"{SW}/web/bindings", {"ip": "10.1.1.60", "mac": "zz:50:56:00:99:02"}, 400, "is not a MAC address"),
    ("post", f"{SW}/web/bindings", {"ip": "10.1.1.60", "mac": MAC["vm1"]}, 409, f"mac {MAC['vm1']} on switch 'web' is already used"),
    ("post", f"{SW}/web/bindings", {"ip": "10.1.1.60"}, 422, "mac"),
    ("post", f"{SW}/db/bindings", {"ip": "10.1.1.60", "mac": "00:50:56:00:99:02"}, 404, "no logical switch 'db'"),
    ("delete", f"{SW}/web/bindings/10.1.1.77", None, 404, "no static binding for 10.1.1.77 on logical switch 'web'"),
    ("delete", f"{SW}/web/bindings/10.1.1.11", None, 404, "no static binding for 10.1.1.11"),
    ("delete", f"{SW}/web/bindings/ten", None, 400, "ip 'ten' is not an IPv4 address"),
    ("post", "/v1/routers", {"name": "dlr1", "interfaces": [{"switch": "spare", "ip": "10.1.9.1"}]}, 409,
     "name 'dlr1' is already used"),
    ("post", "/v1/routers", {"name": "dlr2", "interfaces": [{"switch": "db", "ip": "10.1.3.1"}]}, 404,
     "no logical switch 'db'"),
    ("post", "/v1/routers", {"name": "dlr2", "interfaces": [{"switch": "web", "ip": "10.1.1.2"}]}, 409,
     "switch 'web' already has a gateway"),
    ("post", "/v1/routers", {"name": "dlr2", "interfaces": []}, 400, "at least one interface is required"),
    ("post", "/v1/routers", {"name": "dlr2"}, 422, "interfaces"),
    ("post", "/v1/routers", {"name": "dlr2", "interfaces": [{"switch": "spare", "ip": "10.1.9.1"}],
                             "routes": [{"prefix": "0.0.0.0/0", "next_hop": "10.1.1.254"}]}, 400,
     "next hop 10.1.1.254 is unreachable"),
    ("delete", "/v1/routers/dlr9", None, 404, "no logical router 'dlr9'"),
    ("post", "/v1/routers/dlr1/interfaces", {"switch": "spare", "ip": "10.1.9.15"}, 409,
     "logical_ports[3] 'vm5': ip 10.1.9.15 on switch 'spare' is already used by router 'dlr1'"),
    ("post", "/v1/routers/dlr1/interfaces", {"switch": "spare", "ip": "10.1.1.5"}, 400,
     "ip 10.1.1.5 is outside switch 'spare' subnet 10.1.9.0/24"),
    ("post", "/v1/routers/dlr1/interfaces", {"switch": "app", "ip": "10.1.2.2"}, 409,
     "switch 'app' already has a gateway"),
    ("post", "/v1/routers/dlr1/interfaces", {"switch": "spare"}, 422, "ip"),
    ("post", "/v1/routers/dlr9/interfaces", {"switch": "spare", "ip": "10.1.9.1"}, 404, "no logical router 'dlr9'"),
    ("delete", "/v1/routers/dlr1/interfaces/spare", None, 404, "'dlr1' has no interface on switch 'spare'"),
    ("delete", "/v1/routers/dlr1/interfaces/app", None, 409, "next hop 10.1.2.254 is unreachable"),
    ("post", "/v1/routers/dlr1/routes", {"prefix": "10.8.0.0/16", "next_hop": "10.9.0.1"}, 400,
     "next hop 10.9.0.1 is unreachable"),
    ("post", "/v1/routers/dlr1/routes", {"prefix": "10.8.0.0/16", "next_hop": "10.1.1.1"}, 400,
     "next_hop 10.1.1.1 is an interface IP of router 'dlr1' itself"),
    ("post", "/v1/routers/dlr1/routes", {"prefix": "0.0.0.0/0", "next_hop": "10.1.1.254"}, 409,
     "'dlr1' already has a route to 0.0.0.0/0"),
    ("post", "/v1/routers/dlr1/routes", {"prefix": "10.8.0.0", "next_hop": "10.1.1.254"}, 400,
     "prefix '10.8.0.0' is not an IPv4 subnet"),
    ("post", "/v1/routers/dlr1/routes", {"prefix": "10.8.0.0/16"}, 422, "next_hop"),
    ("post", "/v1/routers/dlr9/routes", {"prefix": "10.8.0.0/16", "next_hop": "10.1.1.254"}, 404, "'dlr9'"),
    ("delete", "/v1/routers/dlr1/routes?prefix=10.8.0.0/16", None, 404, "'dlr1' has no route to 10.8.0.0/16"),
    ("delete", "/v1/routers/dlr1/routes?prefix=ten", None, 400, "prefix 'ten' is not an IPv4 subnet"),
    ("delete", "/v1/routers/dlr1/routes", None, 422, "prefix"),
    ("post", PORTS, {**VM7, "name": "vm1"}, 409, "name 'vm1' is already used"),
    ("post", PORTS, {**VM7, "switch": "db"}, 404, "no logical switch 'db'"),
    ("post", PORTS, {**VM7, "ips": ["10.1.1.17"]}, 400, "ip 10.1.1.17 is outside switch 'app' subnet 10.1.2.0/24"),
    ("post", PORTS, {**VM7, "ips": ["10.1.2.13"]}, 409,
     "logical_ports[5] 'vm7': ip 10.1.2.13 on switch 'app' is already used by port 'vm3'"),
    ("post", PORTS, {**VM7, "ips": ["10.1.2.1"]}, 409, "ip 10.1.2.1 on switch 'app' is already used by router 'dlr1'"),
    ("post", PORTS, {**VM7, "mac": MAC["vm3"]}, 409, f"mac {MAC['vm3']} on switch 'app' is already used by port 'vm3'"),
    ("post", PORTS, {**VM7, "mac": "02:50:56:56:44:52"}, 400, "mac 02:50:56:56:44:52 is the routers' vMAC"),
    ("post", PORTS, {**VM7, "mac": "01:00:5e:00:00:01"}, 400, "is not a unicast NIC address"),
    ("post", PORTS, {"name": "vm7", "switch": "app"}, 422, "mac"),
    ("patch", f"{PORTS}/vm9", {}, 400, "nothing to change"),
    ("patch", f"{PORTS}/vm99", {"learn": True}, 404, "no logical port 'vm99'"),
    ("patch", f"{PORTS}/vm1", {"ips": ["10.1.1.50"]}, 409, "ip 10.1.1.50 on switch 'web' is already used by static binding"),
    ("delete", f"{PORTS}/vm99", None, 404, "no logical port 'vm99' (known: vm1, vm2, vm3, vm5, vm9)"),
    ("delete", "/v1/learned-bindings/web/10.1.1.11", None, 404, "no learned binding for 10.1.1.11 on logical switch 'web'"),
    ("delete", "/v1/learned-bindings/db/10.1.1.99", None, 404, "no logical switch 'db'"),
    ("delete", "/v1/learned-bindings/web/ten", None, 400, "ip 'ten' is not an IPv4 address"),
    ("patch", "/v1/settings", {}, 400, "nothing to change"),
    ("patch", "/v1/settings", {"vmac": "zz"}, 400, "settings: vmac 'zz' is not a MAC address"),
    ("patch", "/v1/settings", {"vmac": MAC["vm1"]}, 400, f"mac {MAC['vm1']} is the routers' vMAC"),
    ("patch", "/v1/settings", {"mtu": 9000}, 422, "mtu"),
    ("put", "/v1/intent", {"logical_switches": [{"name": "a", "vni": 5001, "subnet": "10.1.1.0/24"},
                                                {"name": "b", "vni": 5001, "subnet": "10.1.2.0/24"}]}, 409,
     "logical_switches[1] 'b': vni 5001 is already used by logical switch 'a'"),
    ("put", "/v1/intent", {"logical_ports": [{"name": "p", "switch": "web", "mac": "00:50:56:00:00:07"}]}, 400,
     "logical_ports[0] 'p': unknown logical switch 'web' (known: none)"),
    ("put", "/v1/intent", {"logical_ports": [{"name": "p", "switch": "web"}]}, 422, "mac"),
]


@pytest.mark.parametrize("method, path, body, status, problem", REFUSED,
                         ids=[f"{m} {p} {status}" for m, p, _, status, _ in REFUSED])
def test_refused_changes_say_why_and_change_nothing(api, ctl, method, path, body, status, problem):
    before = snapshot(ctl)
    r = api.request(method, path, json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    if status == 422:      # FastAPI's own: a list of errors, each locating its field
        assert any(e["loc"][-1] == problem for e in detail), detail
    else:
        assert problem in detail
    assert snapshot(ctl) == before


def test_no_answer_from_the_controller_is_504():
    def silent(fn):
        raise nb.NoAnswer("the controller did not answer within 5 s")
    r = TestClient(create_api(SimpleNamespace(call=silent))).get("/v1/hypervisors")
    assert r.status_code == 504 and r.json() == {"detail": "the controller did not answer within 5 s"}


# --- the app's side: calls run in its thread, answers (or errors) come back -------------------

class FakeApp:
    """Just enough of PacketwalkController for its call()/_call() pair: one thread plays the
    app's event loop."""
    name = "fake"

    def __init__(self, running=True):
        self.events, self.thread_name = queue.Queue(), None
        if running:
            threading.Thread(target=self._loop, daemon=True).start()

    def send_event(self, name, ev):
        self.events.put(ev)

    def _loop(self):
        from controller.app import PacketwalkController
        while True:
            PacketwalkController._call(self, self.events.get())


def test_app_call_runs_the_function_in_the_apps_thread():
    from controller.app import PacketwalkController
    app = FakeApp()
    assert PacketwalkController.call(app, lambda c: threading.current_thread().name) != threading.current_thread().name
    with pytest.raises(nb.NotFound, match="no hypervisor"):
        PacketwalkController.call(app, lambda c: nb.find_hypervisor(Network(), "hv9"))


def test_app_call_gives_up_when_the_app_does_not_answer(monkeypatch):
    from controller import app as app_module
    monkeypatch.setattr(app_module, "API_TIMEOUT", 0.05)
    with pytest.raises(nb.NoAnswer, match="did not answer"):
        app_module.PacketwalkController.call(FakeApp(running=False), lambda c: 1)


# --- the OpenAPI document -----------------------------------------------------------------------

def test_openapi_document_is_valid_and_lists_every_endpoint(api):
    doc = api.get("/openapi.json").json()
    validate(doc)
    paths = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert paths >= {
        ("GET", "/v1/hypervisors"), ("GET", "/v1/hypervisors/{name}/tunnels"), ("GET", "/v1/hypervisors/{name}/flows"),
        ("GET", "/v1/logical-switches"), ("POST", "/v1/logical-switches"), ("GET", "/v1/logical-switches/{name}"),
        ("PATCH", "/v1/logical-switches/{name}"), ("DELETE", "/v1/logical-switches/{name}"),
        ("GET", "/v1/logical-switches/{name}/vteps"), ("GET", "/v1/logical-switches/{name}/mac-table"),
        ("GET", "/v1/logical-switches/{name}/arp-table"), ("POST", "/v1/logical-switches/{name}/bindings"),
        ("DELETE", "/v1/logical-switches/{name}/bindings/{ip}"), ("GET", "/v1/routers"), ("POST", "/v1/routers"),
        ("GET", "/v1/routers/{name}"), ("DELETE", "/v1/routers/{name}"), ("POST", "/v1/routers/{name}/interfaces"),
        ("DELETE", "/v1/routers/{name}/interfaces/{switch}"), ("POST", "/v1/routers/{name}/routes"),
        ("DELETE", "/v1/routers/{name}/routes"), ("GET", "/v1/conflicts"),
        ("GET", "/v1/logical-ports"), ("POST", "/v1/logical-ports"), ("GET", "/v1/logical-ports/{name}"),
        ("PATCH", "/v1/logical-ports/{name}"), ("DELETE", "/v1/logical-ports/{name}"), ("GET", "/v1/learned-bindings"),
        ("DELETE", "/v1/learned-bindings/{switch}/{ip}"), ("GET", "/v1/intent"), ("PUT", "/v1/intent"),
        ("GET", "/v1/settings"), ("PATCH", "/v1/settings")}
    assert api.get("/docs").status_code == 200


@pytest.mark.parametrize("key", ["²", "٣"])          # digits to str.isdigit, not VNIs
def test_a_unicode_digit_is_an_unknown_switch_name_not_a_server_error(api, key):
    r = api.get(f"/v1/logical-switches/{key}")
    assert r.status_code == 404 and key in r.json()["detail"]

