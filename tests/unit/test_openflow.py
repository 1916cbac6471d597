"""Flow specs rendered as OpenFlow 1.3 FLOW_MODs, serialized to bytes and read back."""
import struct
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller import openflow
from controller.flows import MULTICAST, Flow, Goto, Move, Output, SetField
from controller.l2 import arp_responder, l2_flows
from controller.model import Network
from controller.tables import Table
from tests.labnet import network as lab_network

# All a FLOW_MOD needs of a datapath to be built and serialized (os_ken MsgBase.serialize).
DP = SimpleNamespace(ofproto=ofp, ofproto_parser=parser)
MATCH_AT = ofp.OFP_FLOW_MOD_SIZE - ofp.OFP_MATCH_SIZE       # where ofp_match starts


def read_back(msg) -> SimpleNamespace:
    """Serialize `msg` and parse the bytes back: what the switch would receive."""
    msg.serialize()
    buf = bytes(msg.buf)
    version, msg_type, length = struct.unpack_from("!BBH", buf)
    cookie, cookie_mask, table_id, command, _, _, priority = struct.unpack_from("!QQBBHHH", buf, 8)
    match = parser.OFPMatch.parser(buf, MATCH_AT)
    offset, instructions = MATCH_AT + (match.length + 7) // 8 * 8, []
    while offset < len(buf):
        instructions.append(parser.OFPInstruction.parser(buf, offset))
        offset += instructions[-1].len
    assert (version, msg_type, length) == (ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, len(buf))
    return SimpleNamespace(cookie=cookie, cookie_mask=cookie_mask, table_id=table_id, command=command,
                           priority=priority, match=match, instructions=instructions)


def network() -> Network:
    """hv1 with b1 and hv2 with b2 on blue, each on its hypervisor's port 1 ("tap"), their IPs
    configured; a static binding; one tunnel each way (ofport 9)."""
    _, net = lab_network({
        "name": "t", "hypervisors": [{"name": "hv1"}, {"name": "hv2"}],
        "logical_switches": [{"name": "blue", "vni": 5001, "subnet": "10.1.1.0/24"}],
        "vms": [{"name": f"b{i}", "hypervisor": f"hv{i}", "switch": "blue", "ip": f"10.1.1.1{i}",
                 "mac": f"00:50:56:00:00:0{i}"} for i in (1, 2)],
        "static_bindings": [{"switch": "blue", "ip": "10.1.1.50", "mac": "00:50:56:00:99:01"}]}, iface="tap")
    net.hypervisors["hv1"].tunnels, net.hypervisors["hv2"].tunnels = {"hv2": 9}, {"hv1": 9}
    return net


NET = network()
ALL_L2 = l2_flows(NET, NET.hypervisors["hv1"])


def test_the_l2_flows_cover_every_kind_of_field_and_action():
    fields = {k for f in ALL_L2 for k, _ in f.match}
    assert fields == {"in_port", "eth_type", "eth_dst", "arp_op", "arp_spa", "arp_sha", "arp_tpa",
                      "tunnel_id", "reg0"}
    assert {type(a) for f in ALL_L2 for a in f.actions} == {Output, SetField, Move, Goto}
    assert {a.field for f in ALL_L2 for a in f.actions if isinstance(a, SetField)} >= {"tunnel_id", "reg0"}


def test_flow_add_carries_cookie_table_priority_and_match():
    flow = Flow.of(Table.L2_LOOKUP, 100, {"reg0": 0, "tunnel_id": 5001, "eth_dst": "00:50:56:00:00:02"},
                   [Output(9)], "port:b2")
    msg = openflow.flow_add(DP, flow)
    assert (msg.cookie, msg.table_id, msg.priority, msg.command) == (flow.cookie, 60, 100, ofp.OFPFC_ADD)
    assert dict(msg.match.items()) == {"reg0": 0, "tunnel_id": 5001, "eth_dst": "00:50:56:00:00:02"}
    [apply] = msg.instructions
    assert apply.type == ofp.OFPIT_APPLY_ACTIONS
    assert [(a.port, a.max_len) for a in apply.actions] == [(9, 0)]


def test_actions_then_goto_become_apply_actions_plus_goto_table():
    flow = Flow.of(Table.CLASSIFY, 100, {"in_port": 3}, [SetField("tunnel_id", 5001), Goto(Table.ARP_SNOOP)], "x")
    apply, goto = openflow.flow_add(DP, flow).instructions
    assert isinstance(apply, parser.OFPInstructionActions) and apply.type == ofp.OFPIT_APPLY_ACTIONS
    assert [(a.key, a.value) for a in apply.actions] == [("tunnel_id", 5001)]
    assert isinstance(goto, parser.OFPInstructionGotoTable) and goto.table_id == 10


def test_goto_alone_and_drop():
    [goto] = openflow.flow_add(DP, Flow.of(Table.ARP_SNOOP, 0, {}, [Goto(Table.ARP_RESPONDER)], "x")).instructions
    assert isinstance(goto, parser.OFPInstructionGotoTable) and goto.table_id == 20
    assert openflow.flow_add(DP, Flow.of(Table.FLOOD, 0, {}, [], "x")).instructions == []


def test_symbolic_output_ports():
    flow = Flow.of(Table.ARP_SNOOP, 50, {}, [Output("controller"), Output("in_port")], "x")
    [apply] = openflow.flow_add(DP, flow).instructions
    assert [(a.port, a.max_len) for a in apply.actions] == [(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER),
                                                            (ofp.OFPP_IN_PORT, 0)]


def test_a_masked_match_survives_serialization():
    flow = Flow.of(Table.FLOOD, 10, {"tunnel_id": 5001, "eth_dst": MULTICAST}, [Output(1)], "x")
    back = read_back(openflow.flow_add(DP, flow))
    assert back.match["eth_dst"] == MULTICAST and back.match["tunnel_id"] == 5001


@pytest.mark.parametrize("flow", ALL_L2, ids=lambda f: f.ofctl().split(",cookie")[0] + f"/{f.cookie:x}")
def test_every_l2_flow_serializes_and_reads_back_as_its_spec(flow):
    back = read_back(openflow.flow_add(DP, flow))
    assert (back.cookie, back.table_id, back.priority) == (flow.cookie, int(flow.table), flow.priority)
    assert (back.command, back.cookie_mask) == (ofp.OFPFC_ADD, 0)
    assert dict(back.match.items()) == dict(flow.match)
    gotos = [i.table_id for i in back.instructions if isinstance(i, parser.OFPInstructionGotoTable)]
    assert gotos == [int(a.table) for a in flow.actions if isinstance(a, Goto)]
    actions = [a for i in back.instructions for a in getattr(i, "actions", ())]
    assert len(actions) == len([a for a in flow.actions if not isinstance(a, Goto)])


def test_the_arp_responder_moves_whole_fields():
    flow = arp_responder(5001, "10.1.1.50", "00:50:56:00:99:01", "b")
    [apply] = read_back(openflow.flow_add(DP, flow)).instructions
    moves = [(a.src_field, a.dst_field, a.n_bits) for a in apply.actions if isinstance(a, parser.NXActionRegMove)]
    assert moves == [("eth_src", "eth_dst", 48), ("arp_sha", "arp_tha", 48), ("arp_spa", "arp_tpa", 32)]


def test_responder_binding_reads_an_installed_responder_back():
    stat = read_back(openflow.flow_add(DP, arp_responder(5001, "10.1.1.50", "00:50:56:00:99:01", "b")))
    assert openflow.responder_binding(stat) == (5001, "10.1.1.50", "00:50:56:00:99:01")
    other = read_back(openflow.flow_add(DP, next(f for f in ALL_L2 if f.table == Table.FLOOD)))
    assert openflow.responder_binding(other) is None


def test_flow_delete_removes_exactly_one_cookie_from_every_table():
    back = read_back(openflow.flow_delete(DP, 0x7077123456789ABC))
    assert (back.cookie, back.cookie_mask) == (0x7077123456789ABC, 2 ** 64 - 1)
    assert (back.command, back.table_id) == (ofp.OFPFC_DELETE, ofp.OFPTT_ALL)


def test_our_flows_request_asks_by_the_app_bits():
    msg = openflow.our_flows_request(DP)
    msg.serialize()
    assert (msg.cookie, msg.cookie_mask, msg.table_id) == (0x7077 << 48, 0xFFFF << 48, ofp.OFPTT_ALL)



def test_a_failover_group_is_added_or_replaces_the_one_the_switch_has():
    """After a reconnect the switch may hold an older group by the same id: Open vSwitch's
    add-or-modify command makes it this one either way."""
    msg = openflow.failover_group_set(DP, 0x107, 7, Table.IN_TRANSIT)
    msg.serialize()
    command, group_type, _, group_id = struct.unpack_from("!HBBI", bytes(msg.buf), 8)
    assert (command, group_type, group_id) == (openflow.OFPGC_ADD_OR_MOD, ofp.OFPGT_FF, 0x107)


def test_a_meter_is_added_then_modified_so_an_older_one_is_replaced():
    add, modify = openflow.meter_set(DP, 3, 100, 20)
    for m in (add, modify):
        m.serialize()
    assert [struct.unpack_from("!HHI", bytes(m.buf), 8) for m in (add, modify)] == [
        (ofp.OFPMC_ADD, ofp.OFPMF_PKTPS | ofp.OFPMF_BURST, 3), (ofp.OFPMC_MODIFY, ofp.OFPMF_PKTPS | ofp.OFPMF_BURST, 3)]


def test_bundle_bytes_are_what_os_ken_would_send_and_each_flow_is_encoded_once():
    """The cached, hand-framed bundle equals os-ken's own messages byte for byte (xids
    included); a flow held by many hypervisors keeps one encoding."""
    from controller.reconcile import FlowUpdate
    flows = (arp_responder(10000, "10.0.0.5", "00:50:56:00:00:05", "port:a"),
             Flow.of(Table.L2_LOOKUP, 100, {"tunnel_id": 10000, "eth_dst": "00:50:56:00:00:05"},
                     [SetField("reg1", 3), Output(3)], "mac:a"))
    update = FlowUpdate("hv1", flows, (0x1234, 0x5678))
    dp = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1, xid=41)
    dp.set_xid = lambda m: (setattr(dp, "xid", dp.xid + 1), m.set_xid(dp.xid))[-1]
    wire, first, last = openflow.bundle_bytes(dp, 7, update)
    ref = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1, xid=41)
    ref.set_xid = lambda m: (setattr(ref, "xid", ref.xid + 1), m.set_xid(ref.xid))[-1]
    msgs = openflow.bundle(ref, 7, openflow.update_messages(ref, update))
    for m in msgs:
        ref.set_xid(m)
        m.serialize()
    assert wire == b"".join(bytes(m.buf) for m in msgs)
    assert (first, last) == (msgs[0].xid, msgs[-1].xid) == (42, 46)
    assert openflow.flow_add_bytes(dp, flows[0]) is openflow.flow_add_bytes(dp, flows[0])


def test_each_bundle_add_carries_its_own_xid_inside_while_other_threads_send():
    """Other threads (a link's os-ken sends) move the datapath's xid too: each BUNDLE_ADD's
    inner FLOW_MOD must still carry the outer message's xid (OVS refuses the bundle else)."""
    from controller.reconcile import FlowUpdate

    class Busy:
        """A datapath whose xid another thread moves between any two reads of it."""
        ofproto, ofproto_parser, id = ofp, parser, 1

        def __init__(self):
            self._xid = 41

        @property
        def xid(self):
            value, self._xid = self._xid, self._xid + 1000
            return value

        @xid.setter
        def xid(self, value):
            self._xid = value

        def set_xid(self, m):
            m.set_xid(self.xid + 1)

    flows = tuple(Flow.of(Table.L2_LOOKUP, 100, {"tunnel_id": 10000, "eth_dst": f"00:50:56:00:00:{i:02x}"},
                          [Output(3)], f"mac:{i}") for i in range(3))
    wire, _, _ = openflow.bundle_bytes(Busy(), 7, FlowUpdate("hv1", flows, ()))
    at, pairs = 0, []
    while at < len(wire):
        length, outer = struct.unpack_from("!HI", wire, at + 2)
        if struct.unpack_from("!I", wire, at + 12)[0] == ofp.ONF_ET_BUNDLE_ADD_MESSAGE:
            pairs.append((outer, struct.unpack_from("!I", wire, at + 24 + 4)[0]))    # inner header after 24
        at += length
    assert len(pairs) == 3 and all(o == i for o, i in pairs)


def test_every_flow_of_a_network_encodes_as_os_ken_would():
    """flow_add_bytes encodes match fields and action lists once for all flows that share
    them: each FLOW_MOD must still be os-ken's own, byte for byte."""
    from controller.engine import Engine
    from packetwalk.enginebench import build
    net = build(4, 40)
    engine = Engine(net)
    engine.update()
    flows = {c: f for hv in net.hypervisors for c, f in engine.flows(hv).items()}
    assert len(flows) > 300
    dp = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1, xid=0)
    for flow in flows.values():
        msg = openflow.flow_add(dp, flow)
        msg.xid = 0
        msg.serialize()
        assert openflow.flow_add_bytes(dp, flow) == bytes(msg.buf), flow.ofctl()
