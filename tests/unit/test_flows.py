"""Flow specs: cookies, ovs-ofctl text, and the diff that reconciles a switch."""
import pytest

from controller.flows import (BROADCAST, COOKIE_APP, COOKIE_APP_MASK, COOKIE_OWNER_MASK, ETH_ARP,
                              MULTICAST, DecTtl, Flow, FlowDiff, Goto, Move, Output, SetField,
                              diff, owner_cookie)
from controller.tables import Table

SPEC_MASK = 0xFFFFFF


def vm_ingress(ofport=1, vni=5001, owner="port:b1"):
    return Flow.of(Table.CLASSIFY, 100, {"in_port": ofport},
                   [SetField("tunnel_id", vni), Goto(Table.ARP_SNOOP)], owner)


def to_port(mac, ofport, owner="port:b1"):
    return Flow.of(Table.L2_LOOKUP, 100, {"tunnel_id": 5001, "eth_dst": mac}, [Output(ofport)], owner)


# --- cookies -------------------------------------------------------------------------------

def test_cookie_carries_the_app_bits_in_the_top_16_bits():
    for flow in (vm_ingress(), to_port("00:50:56:00:00:01", 3), Flow.of(Table.FLOOD, 0, {}, [], "x")):
        assert flow.cookie >> 48 == 0x7077
        assert flow.cookie & COOKIE_APP_MASK == COOKIE_APP
        assert flow.cookie < 2 ** 64


def test_all_flows_of_one_owner_share_the_owner_bits():
    flows = [vm_ingress(), to_port("00:50:56:00:00:01", 3), to_port("00:50:56:00:00:02", 4)]
    owner_bits = {f.cookie & (COOKIE_APP_MASK | COOKIE_OWNER_MASK) for f in flows}
    assert owner_bits == {owner_cookie("port:b1")}
    assert len({f.cookie for f in flows}) == 3          # ... but each flow has its own cookie


def test_different_owners_have_different_owner_bits():
    a, b = vm_ingress(owner="port:b1"), vm_ingress(owner="port:b2")
    assert a.cookie & COOKIE_OWNER_MASK != b.cookie & COOKIE_OWNER_MASK
    assert owner_cookie("port:b1") & SPEC_MASK == 0


def test_cookie_is_a_pure_function_of_the_spec():
    assert vm_ingress().cookie == vm_ingress().cookie


def test_changed_action_changes_the_cookie_but_not_the_owner_bits():
    old, new = to_port("00:50:56:00:00:01", 3), to_port("00:50:56:00:00:01", 4)
    assert old.key == new.key
    assert old.cookie != new.cookie
    assert old.cookie & ~SPEC_MASK == new.cookie & ~SPEC_MASK == owner_cookie("port:b1")


def test_changed_match_or_priority_changes_the_cookie():
    base = vm_ingress(ofport=1)
    assert vm_ingress(ofport=2).cookie != base.cookie
    moved = Flow.of(Table.CLASSIFY, 90, dict(base.match), base.actions, base.owner)
    assert moved.cookie != base.cookie


# --- ovs-ofctl text ------------------------------------------------------------------------

def test_ofctl_text_of_a_whole_flow():
    flow = vm_ingress(ofport=3, vni=5001)
    assert flow.ofctl() == (f"table=0,priority=100,cookie={flow.cookie:#x},in_port=3,"
                            "actions=set_field:5001->tun_id,goto_table:10")


def test_ofctl_without_match_or_actions_says_drop():
    flow = Flow.of(Table.FLOOD, 0, {}, [], "pipeline")
    assert flow.ofctl() == f"table=70,priority=0,cookie={flow.cookie:#x},actions=drop"


@pytest.mark.parametrize("match, text", [
    ({"ipv4_dst": "10.1.2.0/24"}, "ip_dst=10.1.2.0/24"),
    ({"ipv4_src": "10.1.1.11", "icmpv4_type": 8}, "ip_src=10.1.1.11,icmp_type=8"),
    ({"tunnel_id": 5001, "reg0": 1}, "tun_id=5001,reg0=1"),
    ({"eth_dst": MULTICAST}, "eth_dst=01:00:00:00:00:00/01:00:00:00:00:00"),
    ({"ipv4_dst": ("10.1.0.0", "255.255.0.0")}, "ip_dst=10.1.0.0/255.255.0.0"),
    ({"eth_type": ETH_ARP, "eth_dst": BROADCAST, "arp_op": 1},
     "eth_type=2054,eth_dst=ff:ff:ff:ff:ff:ff,arp_op=1"),
])
def test_ofctl_match_uses_ofctl_field_names_and_masks(match, text):
    assert Flow.of(Table.L3_ROUTING, 10, match, [], "t").ofctl_match() == text


@pytest.mark.parametrize("action, text", [
    (Output(7), "output:7"),
    (Output("in_port"), "in_port"),
    (Output("controller"), "controller"),
    (SetField("tunnel_id", 5002), "set_field:5002->tun_id"),
    (SetField("ipv4_dst", "10.1.1.1"), "set_field:10.1.1.1->ip_dst"),
    (SetField("eth_src", "02:50:56:56:44:52"), "set_field:02:50:56:56:44:52->eth_src"),
    (Move("ipv4_src", "ipv4_dst"), "move:ip_src->ip_dst"),
    (Move("arp_sha", "arp_tha"), "move:arp_sha->arp_tha"),
    (DecTtl(), "dec_ttl"),
    (Goto(Table.L2_LOOKUP), "goto_table:60"),
])
def test_ofctl_action_text(action, text):
    assert action.ofctl() == text


def test_goto_must_be_last():
    with pytest.raises(ValueError, match="port:b1: goto_table must be the last action"):
        Flow.of(Table.CLASSIFY, 100, {"in_port": 1}, [Goto(Table.ARP_SNOOP), Output(2)], "port:b1")
    with pytest.raises(ValueError):
        Flow.of(Table.CLASSIFY, 100, {}, [Goto(Table.ARP_SNOOP), Goto(Table.FLOOD)], "x")
    assert Flow.of(Table.CLASSIFY, 100, {}, [Output(2), Goto(Table.FLOOD)], "x").actions[-1] == Goto(Table.FLOOD)


def test_key_is_table_priority_match_only():
    a, b = to_port("00:50:56:00:00:01", 3, owner="port:b1"), to_port("00:50:56:00:00:01", 9, owner="x")
    assert a.key == b.key == (60, 100, (("tunnel_id", 5001), ("eth_dst", "00:50:56:00:00:01")))


# --- diff ----------------------------------------------------------------------------------

A, B, C = vm_ingress(ofport=1), vm_ingress(ofport=2), to_port("00:50:56:00:00:01", 3)


def test_diff_adds_what_is_missing():
    d = diff([A, B], set())
    assert set(d.add) == {A, B} and d.delete == ()


def test_diff_deletes_stale_cookies_in_order():
    stale = sorted([C.cookie, COOKIE_APP | 0x123])
    d = diff([A], {A.cookie, *stale})
    assert d.add == () and d.delete == tuple(stale)


def test_diff_keeps_what_is_already_there():
    d = diff([A, B, C], {A.cookie, B.cookie, C.cookie})
    assert d == FlowDiff((), ()) and not d


def test_a_changed_flow_is_one_add_and_one_delete_of_the_old_cookie():
    changed = to_port("00:50:56:00:00:01", 4)
    d = diff([A, changed], {A.cookie, C.cookie})
    assert d.add == (changed,)
    assert d.delete == (C.cookie,)


def test_duplicate_wanted_flows_are_added_once():
    assert diff([A, vm_ingress(ofport=1)], set()).add == (A,)


def test_flowdiff_truthiness():
    assert not FlowDiff((), ())
    assert FlowDiff((A,), ())
    assert FlowDiff((), (A.cookie,))
