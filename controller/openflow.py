"""Flow specs to OpenFlow 1.3 messages (os-ken), and the few messages the apps send."""
from __future__ import annotations

import struct

from os_ken.ofproto import ofproto_common
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.l2 import ARP_RESPONDER_PRIORITY
from controller.tables import Table
from controller.flows import (COOKIE_APP, COOKIE_APP_MASK, CheckPktLarger, DecTtl, Flow, Goto, Group,
                              Meter, Move, Output, SetField)
from controller.nx_actions import NXActionCheckPktLarger

_PORTS = {"in_port": ofp.OFPP_IN_PORT, "controller": ofp.OFPP_CONTROLLER}
ALL_COOKIE_BITS = 0xFFFFFFFFFFFFFFFF


def _action(a):
    if isinstance(a, Output):
        port = _PORTS.get(a.port, a.port)
        return parser.OFPActionOutput(port, ofp.OFPCML_NO_BUFFER if port == ofp.OFPP_CONTROLLER else 0)
    if isinstance(a, SetField):
        return parser.OFPActionSetField(**{a.field: a.value})
    if isinstance(a, Move):
        width = {"eth_src": 48, "eth_dst": 48, "arp_sha": 48, "arp_tha": 48,
                 "arp_spa": 32, "arp_tpa": 32, "ipv4_src": 32, "ipv4_dst": 32}[a.src]
        return parser.NXActionRegMove(src_field=a.src, dst_field=a.dst, n_bits=width)
    if isinstance(a, DecTtl):
        return parser.OFPActionDecNwTtl()
    if isinstance(a, Group):
        return parser.OFPActionGroup(a.id)
    if isinstance(a, CheckPktLarger):
        return NXActionCheckPktLarger(a.length, a.dst)
    raise TypeError(f"no OpenFlow rendering for {a!r}")


def flow_add(dp, flow: Flow):
    actions = [_action(a) for a in flow.actions if not isinstance(a, (Goto, Meter))]
    inst = [parser.OFPInstructionMeter(a.id, ofp.OFPIT_METER) for a in flow.actions if isinstance(a, Meter)]
    inst += [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
    if flow.actions and isinstance(flow.actions[-1], Goto):
        inst.append(parser.OFPInstructionGotoTable(int(flow.actions[-1].table)))
    return parser.OFPFlowMod(dp, cookie=flow.cookie, table_id=int(flow.table), command=ofp.OFPFC_ADD,
                             priority=flow.priority, match=parser.OFPMatch(**dict(flow.match)),
                             instructions=inst)


def flow_delete(dp, cookie: int):
    """Delete exactly the flows carrying `cookie` (its spec digest makes it one flow)."""
    return parser.OFPFlowMod(dp, cookie=cookie, cookie_mask=ALL_COOKIE_BITS, table_id=ofp.OFPTT_ALL,
                             command=ofp.OFPFC_DELETE, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             match=parser.OFPMatch())


def our_flows_request(dp):
    """Ask for every flow this controller owns (by the cookie's app bits)."""
    return parser.OFPFlowStatsRequest(dp, table_id=ofp.OFPTT_ALL, out_port=ofp.OFPP_ANY,
                                      out_group=ofp.OFPG_ANY, cookie=COOKIE_APP,
                                      cookie_mask=COOKIE_APP_MASK, match=parser.OFPMatch())


def echo_request(dp):
    return parser.OFPEchoRequest(dp)


def role_request(dp, master: bool, generation: int):
    """Master (this controller programs the switch) or slave (it sends nothing and gets no
    packet-ins); the generation id makes a switch refuse an older master."""
    role = ofp.OFPCR_ROLE_MASTER if master else ofp.OFPCR_ROLE_SLAVE
    return parser.OFPRoleRequest(dp, role, generation)


def packet_ins_wanted(dp):
    """OpenFlow 1.3 sends invalid-TTL packet-ins (dec_ttl at TTL 1) only if asked."""
    pi = 1 << ofp.OFPR_NO_MATCH | 1 << ofp.OFPR_ACTION | 1 << ofp.OFPR_INVALID_TTL
    ps = 1 << ofp.OFPPR_ADD | 1 << ofp.OFPPR_DELETE | 1 << ofp.OFPPR_MODIFY
    return parser.OFPSetAsync(dp, packet_in_mask=[pi, 0], port_status_mask=[ps, ps],
                              flow_removed_mask=[0, 0])


def responder_binding(stat) -> tuple[int, str, str] | None:
    """(VNI, IP, MAC) that an installed ARP-responder flow answers with, or None: after a
    restart the controller relearns its ARP table from what the data plane holds."""
    if stat.table_id != int(Table.ARP_RESPONDER) or stat.priority != ARP_RESPONDER_PRIORITY:
        return None
    vni, ip = stat.match.get("tunnel_id"), stat.match.get("arp_tpa")
    macs = [a.value for i in stat.instructions for a in getattr(i, "actions", ())
            if isinstance(a, parser.OFPActionSetField) and a.key == "eth_src"]
    return (vni, ip, macs[0]) if vni is not None and ip and macs else None


def packet_out(dp, in_port: int, data: bytes, actions):
    return parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                               actions=[_action(a) if not isinstance(a, Resubmit) else
                                        parser.NXActionResubmitTable(table_id=int(a.table))
                                        for a in actions], data=data)


class Resubmit(Goto):
    """In a packet-out: run the packet through one table (Nicira resubmit)."""

    def ofctl(self) -> str:
        return f"resubmit(,{int(self.table)})"


def meter_set(dp, meter_id: int, rate: int, burst: int) -> list:
    """A packets-per-second meter whose one band drops what exceeds `rate` (after `burst`):
    ADD, then MODIFY, so that the switch ends with this meter whether or not it had one by
    that id (after a reconnect it may hold an older one; the ADD it then refuses as existing
    is an error the app ignores). OpenFlow 1.3 has no add-or-modify for meters."""
    args = dict(flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST, meter_id=meter_id,
                bands=[parser.OFPMeterBandDrop(rate=rate, burst_size=burst)])
    return [parser.OFPMeterMod(dp, command=ofp.OFPMC_ADD, **args), parser.OFPMeterMod(dp, command=ofp.OFPMC_MODIFY, **args)]


def meter_delete(dp, meter_id: int):
    return parser.OFPMeterMod(dp, command=ofp.OFPMC_DELETE, meter_id=meter_id)


def table_stats_request(dp, table: int):
    """Every flow of ours in one table, with its packet count."""
    return parser.OFPFlowStatsRequest(dp, table_id=table, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                                      cookie=COOKIE_APP, cookie_mask=COOKIE_APP_MASK, match=parser.OFPMatch())


OFPGC_ADD_OR_MOD = 0x8000    # Open vSwitch's group command (ovs-ofctl mod-group --may-create): add, or replace


def failover_group_set(dp, group_id: int, ofport: int, otherwise: Table):
    """A fast-failover group: out of `ofport` while it exists, else through table `otherwise`
    (its flow sends to the controller, behind a meter, as an ordinary packet-in). Added, or
    replacing the one the switch has by that id (after a reconnect it may be an older one)."""
    return parser.OFPGroupMod(dp, command=OFPGC_ADD_OR_MOD, type_=ofp.OFPGT_FF, group_id=group_id, buckets=[
        parser.OFPBucket(watch_port=ofport, watch_group=ofp.OFPG_ANY, actions=[parser.OFPActionOutput(ofport)]),
        parser.OFPBucket(watch_port=ofp.OFPP_CONTROLLER, watch_group=ofp.OFPG_ANY,
                         actions=[parser.NXActionResubmitTable(table_id=int(otherwise))])])


def group_delete(dp, group_id: int):
    return parser.OFPGroupMod(dp, command=ofp.OFPGC_DELETE, group_id=group_id)


BUNDLE_FLAGS = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED


def update_messages(dp, update) -> list:
    """A FlowUpdate's FLOW_MODs, in order: adds (each replaces a flow with its key in
    place), then deletes by cookie."""
    return [flow_add(dp, f) for f in update.add] + [flow_delete(dp, c) for c in update.delete]


def bundle(dp, bundle_id: int, messages: list) -> list:
    """`messages` as one atomic, ordered bundle (the ONF extension that OVS accepts on
    OpenFlow 1.3): BUNDLE_ADD each, then COMMIT. The switch answers the commit with a
    COMMIT_REPLY carrying `bundle_id` once all of it is in, or with an error and none of it."""
    adds = [parser.ONFBundleAddMsg(dp, bundle_id, BUNDLE_FLAGS, m, []) for m in messages]
    return adds + [parser.ONFBundleCtrlMsg(dp, bundle_id, ofp.ONF_BCT_COMMIT_REQUEST, BUNDLE_FLAGS, [])]


def is_commit_reply(msg) -> bool:
    return isinstance(msg, parser.ONFBundleCtrlMsg) and msg.type == ofp.ONF_BCT_COMMIT_REPLY


_BUNDLE_ADD = struct.Struct("!BBHIIIIxxH")     # OpenFlow header, ONF experimenter, exp_type, bundle id, flags
_XID = struct.Struct("!I")
_WIRE = "_ofp13_flow_add"                      # where a flow keeps its encoded FLOW_MOD (its __dict__)


def flow_add_bytes(dp, flow: Flow) -> bytes:
    """The flow's FLOW_MOD (add) as bytes, xid 0: encoded once per flow. Flows are interned
    (one object for one spec), so a flow that many hypervisors hold is encoded once for all
    of them; it keeps the bytes beside its cookie, outside equality and hashing."""
    wire = flow.__dict__.get(_WIRE)
    if wire is None:
        try:
            wire = _flow_mod_bytes(flow)
        except TypeError:            # an unhashable match value: os-ken's own way
            msg = flow_add(dp, flow)
            msg.xid = 0
            msg.serialize()
            wire = bytes(msg.buf)
        flow.__dict__[_WIRE] = wire
    return wire


_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2x")      # OpenFlow header + ofp_flow_mod before its match
_OXM: dict[tuple, tuple] = {}          # (field, value) -> (os-ken's sort key, its OXM TLV)
_INSTRUCTIONS: dict[tuple, bytes] = {}  # a flow's actions -> its instructions, encoded


def _flow_mod_bytes(flow: Flow) -> bytes:
    """flow_add(flow) serialized with xid 0, byte for byte as os-ken would (test_openflow
    checks it on every flow of a network), but each match field and each list of actions
    encoded once for all flows that share it: os-ken's OFPMatch converts every field from
    and to its user form (about 70 us a flow, most of a cold start's CPU at 200 hypervisors)."""
    tlvs = []
    for field in flow.match:
        oxm = _OXM.get(field)
        if oxm is None:
            n, value, mask = ofp.oxm_from_user(*ofp.oxm_normalize_user(*field))
            n, value, mask = ofp.oxm_from_user(*ofp.oxm_to_user(n, value, mask))   # as OFPMatch stores it
            buf = bytearray()
            ofp.oxm_serialize(n, value, mask, buf, 0)
            oxm = _OXM[field] = (n[0] if isinstance(n, tuple) else n, bytes(buf))
        tlvs.append(oxm)
    tlvs.sort(key=lambda t: t[0])       # OFPMatch's order (stable, as its sort)
    body = b"".join(t for _, t in tlvs)
    length = 4 + len(body)
    match = struct.pack("!HH", ofp.OFPMT_OXM, length) + body + bytes(-length % 8)
    inst = _INSTRUCTIONS.get(flow.actions)
    if inst is None:
        msg = flow_add(_ENCODER, Flow(flow.table, flow.priority, (), flow.actions, flow.owner))
        msg.xid = 0
        msg.serialize()
        inst = _INSTRUCTIONS[flow.actions] = bytes(msg.buf)[_FLOW_MOD.size + 8:]    # after an empty match
    total = _FLOW_MOD.size + len(match) + len(inst)
    return _FLOW_MOD.pack(ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, total, 0, flow.cookie, 0, int(flow.table),
                          ofp.OFPFC_ADD, 0, 0, flow.priority, ofp.OFP_NO_BUFFER, 0, 0, 0) + match + inst


class _Encoder:
    """A datapath for encoding only (os-ken's messages want one)."""
    ofproto, ofproto_parser, id, xid = ofp, parser, 0, 0


_ENCODER = _Encoder()


def flow_delete_bytes(dp, cookie: int) -> bytes:
    msg = flow_delete(dp, cookie)
    msg.xid = 0
    msg.serialize()
    return bytes(msg.buf)


def bundle_bytes(dp, bundle_id: int, update) -> tuple[bytes, int, int]:
    """openflow.bundle(dp, bundle_id, update_messages(dp, update)) as the bytes os-ken would
    send, without building and encoding a message object per flow-mod: each BUNDLE_ADD is
    its header (a new xid of dp's) and the flow's cached FLOW_MOD with the same xid (OVS
    requires the inner xid to be the outer one), then the COMMIT. Returns (bytes, first xid,
    last xid)."""
    inner = [flow_add_bytes(dp, f) for f in update.add] + [flow_delete_bytes(dp, c) for c in update.delete]
    out, first = [], None
    for wire in inner:
        # read once: other threads (a link's os-ken sends) move dp.xid too, and an inner xid
        # that is not the outer one is refused (ONF bundle error 2309, MSG_BAD_XID)
        xid = dp.xid = (dp.xid + 1) & ofp.MAX_XID
        first = xid if first is None else first
        out += [_BUNDLE_ADD.pack(ofp.OFP_VERSION, ofp.OFPT_EXPERIMENTER, _BUNDLE_ADD.size + len(wire), xid,
                                 ofproto_common.ONF_EXPERIMENTER_ID, ofp.ONF_ET_BUNDLE_ADD_MESSAGE, bundle_id, BUNDLE_FLAGS),
                wire[:4], _XID.pack(xid), wire[8:]]
    commit = parser.ONFBundleCtrlMsg(dp, bundle_id, ofp.ONF_BCT_COMMIT_REQUEST, BUNDLE_FLAGS, [])
    dp.set_xid(commit)
    commit.serialize()
    out.append(bytes(commit.buf))
    return b"".join(out), commit.xid if first is None else first, commit.xid
