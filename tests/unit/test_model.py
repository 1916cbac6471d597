"""The controller's model: attachments by iface-id, bindings and their sources, the learning
rules of "learn the IP" ports, where a MAC lives, and a new intent swapped in live."""
import dataclasses

import pytest

from controller.intent import parse_intent
from controller.model import DETACH_HOLD, Attachment, Binding, BindingConflict, Hypervisor, Network

BLUE, RED = 5001, 5002
MAC = "00:50:56:00:00:01"                       # b1's
B2_MAC, C1_MAC = "00:50:56:00:00:02", "00:50:56:00:00:21"
STATIC_IP, STATIC_MAC = "10.1.1.50", "00:50:56:00:99:01"
# b1, b2 (blue) and r1 (red) learn their IPs; c1 (blue) has the configured address 10.1.1.21.
INTENT = {
    "logical_switches": [{"name": "blue", "vni": BLUE, "subnet": "10.1.1.0/24"},
                         {"name": "red", "vni": RED, "subnet": "10.1.2.0/24"}],
    "logical_ports": [{"name": "b1", "switch": "blue", "mac": MAC, "learn": True},
                      {"name": "b2", "switch": "blue", "mac": B2_MAC, "learn": True},
                      {"name": "c1", "switch": "blue", "mac": C1_MAC, "ips": ["10.1.1.21"]},
                      {"name": "r1", "switch": "red", "mac": "00:50:56:00:00:03", "learn": True}],
    "static_bindings": [{"switch": "blue", "ip": STATIC_IP, "mac": STATIC_MAC}]}


@pytest.fixture
def net() -> Network:
    return Network(parse_intent(INTENT))


def attach(net, hv_name, iface, lport="b1", ofport=1, now=0.0) -> Hypervisor:
    """hv's br-int holds `iface` (external_ids:iface-id = lport), or nothing if iface is None."""
    hv = net.hypervisors.setdefault(hv_name, Hypervisor(hv_name, hv_name))
    net.set_interfaces(hv, {iface: (ofport, lport)} if iface else {}, now)
    return hv


def port(net, lport) -> Attachment:
    return next(a for hv in net.hypervisors.values() for a in hv.attachments.values() if a.lport == lport)


def changed(net, edit) -> None:
    d = net.intent.to_dict()
    edit(d)
    net.set_intent(parse_intent(d))


# --- attachments: an interface names its logical port ----------------------------------------

def test_an_interface_naming_a_logical_port_is_attached_with_the_ports_switch_and_mac(net):
    hv = attach(net, "hv1", "tap1", "c1", ofport=7)
    assert hv.attachments == {"tap1": Attachment("tap1", 7, "c1", C1_MAC, BLUE)}
    assert net.attachment_of(BLUE, C1_MAC) == (hv, hv.attachments["tap1"]) and net.unbound(hv) == {}


def test_an_interface_naming_no_logical_port_is_unbound_until_that_port_is_created(net):
    hv = attach(net, "hv1", "tap9", "vm9")
    assert hv.attachments == {} and net.unbound(hv) == {"tap9": "vm9"}
    changed(net, lambda d: d["logical_ports"].append({"name": "vm9", "switch": "red", "mac": "00:50:56:00:00:09"}))
    assert hv.attachments["tap9"].vni == RED and net.unbound(hv) == {}
    changed(net, lambda d: d["logical_ports"].pop())
    assert hv.attachments == {} and net.unbound(hv) == {"tap9": "vm9"}


@pytest.mark.parametrize("ofport", [-1, 0, None])
def test_an_interface_without_an_openflow_port_is_not_attached_yet(net, ofport):
    assert attach(net, "hv1", "tap1", "c1", ofport=ofport).attachments == {}


# --- bindings and their sources ----------------------------------------------------------------

def test_static_and_configured_bindings_are_known_from_the_start(net):
    assert net.bindings == {BLUE: {STATIC_IP: Binding(BLUE, STATIC_IP, STATIC_MAC, "static"),
                                   "10.1.1.21": Binding(BLUE, "10.1.1.21", C1_MAC, "port", "c1")},
                            RED: {}}


@pytest.mark.parametrize("lport, ip", [("b1", "10.1.2.11"), ("b1", "192.168.50.1"), ("r1", "10.1.1.11"),
                                       ("b1", "10.1.1.0"), ("b1", "10.1.1.255"), ("b1", "not-an-ip")])
def test_only_host_addresses_of_the_ports_subnet_are_learned(net, lport, ip):
    attach(net, "hv1", "tap1", lport)
    with pytest.raises(BindingConflict, match=f"port {lport} claims {ip}: not a host address of"):
        net.learn_binding(port(net, lport), ip)
    assert all(ip not in b for b in net.bindings.values()) and net.learned == {}


def test_learn_binding_reports_whether_anything_changed(net):
    attach(net, "hv1", "tap1")
    assert net.learn_binding(port(net, "b1"), "10.1.1.11", now=5.0) is True
    assert net.learn_binding(port(net, "b1"), "10.1.1.11", now=6.0) is False
    assert net.bindings[BLUE]["10.1.1.11"] == Binding(BLUE, "10.1.1.11", MAC, "learned", "b1", 5.0)


def test_only_a_learn_port_learns(net):
    attach(net, "hv1", "tap1", "c1")
    with pytest.raises(BindingConflict, match="port c1 claims 10.1.1.99, which is not one of its addresses"):
        net.learn_binding(port(net, "c1"), "10.1.1.99")
    assert net.learn_binding(port(net, "c1"), "10.1.1.21") is False       # its own: nothing new
    assert "10.1.1.99" not in net.bindings[BLUE] and net.learned == {}


@pytest.mark.parametrize("ip, holder", [("10.1.1.21", C1_MAC), (STATIC_IP, STATIC_MAC)])
def test_a_configured_address_always_wins_over_a_claim(net, ip, holder):
    attach(net, "hv1", "tap1")            # c1 is not even attached: its address is still its own
    for _ in range(3):                    # a port that keeps claiming is listed once
        with pytest.raises(BindingConflict, match=f"{ip} is held by {holder}"):
            net.learn_binding(port(net, "b1"), ip)
    assert net.bindings[BLUE][ip].mac == holder and net.learned == {}
    assert net.conflicts == [{"vni": BLUE, "ip": ip, "claimed_by": MAC, "held_by": holder}]


def test_a_later_configured_port_takes_the_address_a_learn_port_squatted(net):
    attach(net, "hv1", "tap1")
    net.learn_binding(port(net, "b1"), "10.1.1.30")
    changed(net, lambda d: d["logical_ports"].append(
        {"name": "c2", "switch": "blue", "mac": "00:50:56:00:00:22", "ips": ["10.1.1.30"]}))
    assert net.bindings[BLUE]["10.1.1.30"] == Binding(BLUE, "10.1.1.30", "00:50:56:00:00:22", "port", "c2")
    assert net.learned == {}


def test_a_learn_port_holds_one_learned_address_its_newest(net):
    attach(net, "hv1", "tap1")
    for n, ip in enumerate(("10.1.1.30", "10.1.1.31", "10.1.1.32")):
        assert net.learn_binding(port(net, "b1"), ip, now=float(n)) is True
    assert [(b.ip, b.port) for b in net.learned.values()] == [("10.1.1.32", "b1")]
    assert {"10.1.1.30", "10.1.1.31"}.isdisjoint(net.bindings[BLUE])


def test_a_learned_address_of_an_attached_port_cannot_be_taken(net):
    attach(net, "hv1", "tap1")
    attach(net, "hv2", "tap2", "b2")
    net.learn_binding(port(net, "b1"), "10.1.1.30")
    with pytest.raises(BindingConflict, match=f"held by {MAC}"):
        net.learn_binding(port(net, "b2"), "10.1.1.30")
    assert net.bindings[BLUE]["10.1.1.30"].port == "b1" and len(net.conflicts) == 1


def test_a_learned_address_of_a_port_in_transit_cannot_be_taken(net):
    """b1 left hv1 and has not appeared elsewhere yet (a move): its address is still its own
    while its learned bindings are (DETACH_HOLD); b2 claiming it then is refused."""
    attach(net, "hv1", "tap1", now=100.0)
    attach(net, "hv2", "tap2", "b2", now=100.0)
    net.learn_binding(port(net, "b1"), "10.1.1.30", now=100.0)
    attach(net, "hv1", None, now=200.0)                       # b1 detached: in transit
    with pytest.raises(BindingConflict, match=f"held by {MAC}"):
        net.learn_binding(port(net, "b2"), "10.1.1.30", now=200.0 + DETACH_HOLD / 2)
    assert net.bindings[BLUE]["10.1.1.30"].port == "b1"


def test_a_binding_of_a_port_that_is_gone_can_be_taken_over(net):
    attach(net, "hv1", "tap1", now=100.0)
    attach(net, "hv2", "tap2", "b2", now=100.0)
    net.learn_binding(port(net, "b1"), "10.1.1.30", now=100.0)
    attach(net, "hv1", None, now=200.0)                       # b1 detached, for the whole hold
    assert net.learn_binding(port(net, "b2"), "10.1.1.30", now=200.0 + DETACH_HOLD) is True
    assert net.bindings[BLUE]["10.1.1.30"].port == "b2" and [b.port for b in net.learned.values()] == ["b2"]


# --- a detached port's learned bindings ------------------------------------------------------

def test_a_detached_ports_learned_bindings_go_after_the_hold(net):
    attach(net, "hv1", "tap1", now=100.0)
    net.learn_binding(port(net, "b1"), "10.1.1.30", now=100.0)
    attach(net, "hv1", None, now=200.0)
    assert net.expire_learned(200.0 + DETACH_HOLD - 0.5) is False and "10.1.1.30" in net.bindings[BLUE]
    assert net.expire_learned(200.0 + DETACH_HOLD) is True
    assert "10.1.1.30" not in net.bindings[BLUE] and net.learned == {}


def test_a_port_that_comes_back_within_the_hold_keeps_its_learned_bindings(net):
    attach(net, "hv1", "tap1", now=100.0)
    net.learn_binding(port(net, "b1"), "10.1.1.30", now=100.0)
    attach(net, "hv1", None, now=200.0)
    attach(net, "hv2", "tap7", ofport=7, now=200.0 + DETACH_HOLD / 2)      # it moved to hv2
    assert net.expire_learned(200.0 + 10 * DETACH_HOLD) is False
    assert net.bindings[BLUE]["10.1.1.30"].port == "b1" and net.detached_at == {}


def test_restore_learned_reads_the_databases_rows_and_keeps_only_what_still_holds(net):
    rows = [{"switch": "blue", "ip": "10.1.1.30", "mac": MAC, "port": "b1", "learned_at": 1_700_000_000_500},
            {"switch": "blue", "ip": "10.1.1.21", "mac": B2_MAC, "port": "b2", "learned_at": 1},   # c1's now
            {"switch": "blue", "ip": "10.1.1.40", "mac": C1_MAC, "port": "c1", "learned_at": 1},   # c1 does not learn
            {"switch": "gone", "ip": "10.1.9.9", "mac": MAC, "port": "b1", "learned_at": 1}]
    net.restore_learned(rows)
    assert list(net.learned.values()) == [Binding(BLUE, "10.1.1.30", MAC, "learned", "b1", 1_700_000_000.5)]
    assert net.bindings[BLUE]["10.1.1.21"].source == "port" and "10.1.1.40" not in net.bindings[BLUE]


def test_forget_learned(net):
    attach(net, "hv1", "tap1")
    net.learn_binding(port(net, "b1"), "10.1.1.30")
    assert net.forget_learned(BLUE, "10.1.1.30") is True and "10.1.1.30" not in net.bindings[BLUE]
    assert net.forget_learned(BLUE, "10.1.1.30") is False


# --- where a MAC lives ---------------------------------------------------------------------

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
    assert net.vtep_table(RED) == []


# --- a new intent, live -------------------------------------------------------------------------

def test_set_intent_keeps_learned_bindings_and_recomputes_configured_ones(net):
    attach(net, "hv1", "tap1")
    net.learn_binding(port(net, "b1"), "10.1.1.11")
    changed(net, lambda d: (d["static_bindings"].clear(), d["logical_routers"].append(
        {"name": "r1", "interfaces": [{"switch": "blue", "ip": "10.1.1.1"}]})))
    assert {ip: b.source for ip, b in net.bindings[BLUE].items()} == {
        "10.1.1.1": "lif", "10.1.1.21": "port", "10.1.1.11": "learned"}
    assert net.lif_ip(BLUE) == "10.1.1.1" and [r.name for r in net.intent.routers] == ["r1"]


def test_set_intent_drops_what_a_removed_switch_had(net):
    attach(net, "hv1", "p1", "r1")                       # on red
    net.conflicts.append({"vni": RED, "ip": "10.1.2.5", "claimed_by": MAC, "held_by": MAC})
    changed(net, lambda d: (d["logical_ports"].pop(), d["logical_switches"].pop()))     # r1 and red go
    assert set(net.switches) == set(net.bindings) == {BLUE} and net.conflicts == []
    assert net.hypervisors["hv1"].attachments == {} and net.vtep_table(RED) == []


@pytest.mark.parametrize("edit", [
    lambda d: d["logical_ports"][0].update(learn=False),
    lambda d: d["logical_ports"][0].update(mac="00:50:56:00:00:99"),
    lambda d: d["logical_ports"].pop(0),
], ids=["stops learning", "new mac", "deleted"])
def test_set_intent_drops_a_learned_binding_its_port_no_longer_backs(net, edit):
    attach(net, "hv1", "tap1")
    net.learn_binding(port(net, "b1"), "10.1.1.30")
    changed(net, edit)
    assert net.learned == {} and "10.1.1.30" not in net.bindings[BLUE]


def test_set_intent_drops_learned_bindings_outside_a_new_subnet(net):
    attach(net, "hv1", "tap1")
    net.learn_binding(port(net, "b1"), "10.1.1.11")
    changed(net, lambda d: d["logical_switches"][0].update(subnet="10.1.0.0/23"))
    assert "10.1.1.11" in net.bindings[BLUE]
    changed(net, lambda d: (d["logical_switches"][0].update(subnet="10.1.1.0/25"), d["static_bindings"].clear()))
    assert "10.1.1.11" in net.bindings[BLUE]
    changed(net, lambda d: d["logical_switches"][0].update(subnet="10.1.1.64/26") or d["logical_ports"].pop(2))
    assert "10.1.1.11" not in net.bindings[BLUE] and net.learned == {}


def test_settings_reach_the_model(net):
    net.set_intent(dataclasses.replace(net.intent, vmac="02:00:00:00:00:aa"))
    changed(net, lambda d: d["logical_routers"].append({"name": "r1", "interfaces": [{"switch": "red", "ip": "10.1.2.1"}]}))
    assert net.bindings[RED]["10.1.2.1"].mac == "02:00:00:00:00:aa"
