"""The controller's model: attachments from OVSDB external_ids, bindings, where a MAC lives."""
import pytest

from controller.model import Attachment, Binding, BindingConflict, Hypervisor, Network, parse_attachment
from mininet_topos.topology import parse_topology

BLUE = 5001
MAC = "00:50:56:00:00:01"


@pytest.fixture
def net() -> Network:
    return Network(parse_topology({
        "name": "t", "hypervisors": [{"name": "hv1"}, {"name": "hv2"}, {"name": "hv3"}],
        "logical_switches": [{"name": "blue", "vni": BLUE, "subnet": "10.1.1.0/24"},
                             {"name": "red", "vni": 5002, "subnet": "10.1.2.0/24"}],
        "static_bindings": [{"switch": "blue", "ip": "10.1.1.50", "mac": "00:50:56:00:99:01"}]}))


def ids(**changes) -> dict:
    good = {"vm-id": "b1", "attached-mac": MAC, "logical-switch": "blue", "vni": str(BLUE)}
    return {k: v for k, v in {**good, **changes}.items() if v is not None}


# --- parse_attachment ------------------------------------------------------------------------

def test_parse_attachment_reads_good_external_ids(net):
    assert parse_attachment("tap1", 7, ids(), net) == Attachment("tap1", 7, "b1", MAC, BLUE)
    assert parse_attachment("tap1", 7, ids(vni=None), net).vni == BLUE        # vni is optional
    assert parse_attachment("tap1", 7, ids(**{"attached-mac": MAC.upper()}), net).mac == MAC


@pytest.mark.parametrize("changes, problem", [
    ({"vm-id": None}, "port tap1: external_ids lack vm-id"),
    ({"vm-id": None, "attached-mac": None}, "port tap1: external_ids lack attached-mac, vm-id"),
    ({"logical-switch": ""}, "port tap1: external_ids lack logical-switch"),
    ({"attached-mac": "00:50:56:00:00"}, "port tap1: attached-mac '00:50:56:00:00' is not a MAC address"),
    ({"attached-mac": "zz:50:56:00:00:01"}, "port tap1: attached-mac 'zz:50:56:00:00:01' is not a MAC"),
    ({"logical-switch": "green"}, "port tap1: unknown logical switch 'green'"),
    ({"vni": "5002"}, "port tap1: vni 5002 does not match switch blue (VNI 5001)"),
])
def test_parse_attachment_names_the_port_and_the_problem(net, changes, problem):
    with pytest.raises(ValueError) as err:
        parse_attachment("tap1", 7, ids(**changes), net)
    assert str(err.value).startswith(problem)


@pytest.mark.parametrize("ofport", [-1, 0, None, []])
def test_parse_attachment_needs_an_openflow_port(net, ofport):
    with pytest.raises(ValueError, match="port tap1: no OpenFlow port number yet"):
        parse_attachment("tap1", ofport, ids(), net)


# --- bindings ------------------------------------------------------------------------------

def test_static_bindings_are_known_from_the_start(net):
    assert net.bindings == {BLUE: {"10.1.1.50": Binding(BLUE, "10.1.1.50", "00:50:56:00:99:01", "static")},
                            5002: {}}


@pytest.mark.parametrize("vni, ip", [(BLUE, "10.1.2.11"), (BLUE, "192.168.50.1"), (5002, "10.1.1.11"),
                                     (9999, "10.1.1.11"), (BLUE, "10.1.1.0"), (BLUE, "10.1.1.255")])
def test_learn_binding_outside_the_switchs_subnet_is_refused(net, vni, ip):
    with pytest.raises(BindingConflict, match=f"{ip} is not a host address of logical switch VNI {vni}'s subnet"):
        net.learn_binding(vni, ip, MAC)
    assert all(ip not in b for b in net.bindings.values())


def test_learn_binding_reports_whether_anything_changed(net):
    assert net.learn_binding(BLUE, "10.1.1.11", MAC) is True
    assert net.learn_binding(BLUE, "10.1.1.11", MAC) is False
    assert net.bindings[BLUE]["10.1.1.11"] == Binding(BLUE, "10.1.1.11", MAC, "snoop")


def test_a_binding_of_a_vm_that_is_gone_can_be_taken_over(net):
    hv = net.hypervisors["hv1"] = Hypervisor("hv1", "169.254.77.2")
    net.set_attachments(hv, {"tap1": Attachment("tap1", 1, "b1", MAC, BLUE)})
    net.learn_binding(BLUE, "10.1.1.11", MAC)
    with pytest.raises(BindingConflict, match="held by 00:50:56:00:00:01"):
        net.learn_binding(BLUE, "10.1.1.11", "00:50:56:00:00:02")
    net.set_attachments(hv, {})
    assert net.learn_binding(BLUE, "10.1.1.11", "00:50:56:00:00:02") is True
    assert len(net.conflicts) == 1


# --- where a MAC lives ---------------------------------------------------------------------

def attach(net, hv_name, port):
    hv = net.hypervisors.setdefault(hv_name, Hypervisor(hv_name, hv_name))
    net.set_attachments(hv, {port: Attachment(port, 1, "b1", MAC, BLUE)} if port else {})


def where(net):
    return net.attachment_of(BLUE, MAC)[0].name


def test_the_newest_attachment_of_a_mac_wins(net):
    attach(net, "hv2", "p2")
    attach(net, "hv1", "p1")      # hv1 comes first in the dict, but is newer
    assert where(net) == "hv1"
    attach(net, "hv3", "p3")
    assert where(net) == "hv3"
    attach(net, "hv3", None)
    assert where(net) == "hv1"


def test_the_newest_attachment_wins_after_a_vm_moves_back_and_on(net):
    attach(net, "hv1", "p1")
    attach(net, "hv2", "p2")      # hv1 -> hv2
    attach(net, "hv1", None)
    attach(net, "hv1", "p1")      # ... back to hv1
    attach(net, "hv2", None)
    assert where(net) == "hv1"
    attach(net, "hv3", "p3")      # ... on to hv3, while hv1 still shows the port
    assert where(net) == "hv3"


def test_vtep_table_lists_the_hypervisors_of_a_vni_by_name(net):
    attach(net, "hv3", "p3")
    attach(net, "hv1", "p1")
    net.hypervisors.setdefault("hv2", Hypervisor("hv2", "hv2"))
    assert [h.name for h in net.vtep_table(BLUE)] == ["hv1", "hv3"]
    assert net.vtep_table(5002) == []


# --- a new logical topology, live ---------------------------------------------------------------

def changed(net, edit) -> None:
    d = net.topology.to_dict()
    edit(d)
    net.set_topology(parse_topology(d))


def test_set_topology_keeps_learned_bindings_and_recomputes_configured_ones(net):
    net.learn_binding(BLUE, "10.1.1.11", MAC)
    changed(net, lambda d: (d["static_bindings"].clear(), d["logical_routers"].append(
        {"name": "r1", "interfaces": [{"switch": "blue", "ip": "10.1.1.1"}]})))
    assert {ip: b.source for ip, b in net.bindings[BLUE].items()} == {"10.1.1.1": "lif", "10.1.1.11": "snoop"}
    assert net.lif_ip(BLUE) == "10.1.1.1" and [r.name for r in net.topology.routers] == ["r1"]


def test_set_topology_drops_what_a_removed_switch_had(net):
    attach(net, "hv1", "p1")                       # on blue
    net.conflicts.append({"vni": 5002, "ip": "10.1.2.5", "claimed_by": MAC, "held_by": MAC})
    changed(net, lambda d: d["logical_switches"].pop())          # red goes
    assert set(net.switches) == set(net.bindings) == {BLUE} and net.conflicts == []
    changed(net, lambda d: d.update(static_bindings=[], logical_switches=[
        {"name": "green", "vni": 5003, "subnet": "10.1.3.0/24"}]))
    assert net.hypervisors["hv1"].attachments == {} and net.vtep_table(BLUE) == []


def test_set_topology_drops_learned_bindings_outside_a_new_subnet(net):
    net.learn_binding(BLUE, "10.1.1.11", MAC)
    changed(net, lambda d: d.update(static_bindings=[]) or d["logical_switches"][0].update(subnet="10.1.0.0/23"))
    assert "10.1.1.11" in net.bindings[BLUE]
    changed(net, lambda d: d["logical_switches"][0].update(subnet="10.1.0.0/24"))
    assert net.bindings[BLUE] == {}


def test_a_repeated_refused_claim_is_listed_once(net):
    net.learn_binding(BLUE, "10.1.1.11", MAC)
    net.hypervisors["hv1"] = Hypervisor("hv1", "169.254.77.2")
    net.set_attachments(net.hypervisors["hv1"], {"p1": Attachment("p1", 1, "vm1", MAC, BLUE)})
    for _ in range(3):
        with pytest.raises(BindingConflict):
            net.learn_binding(BLUE, "10.1.1.11", "00:50:56:00:00:99")
    assert len(net.conflicts) == 1
