"""A fake br-int of our own (Faucet's fakeoftable, much simplified): it takes the OpenFlow
messages the controller would send, serialized to bytes first so that anything that
cannot go on the wire fails here, and keeps the flow table OVS would keep.

It does what the controller relies on: FLOW_MOD add (a flow with the same table,
priority and match is replaced, cookie and all), delete by exact cookie in every table,
bundles (ONF extension on OpenFlow 1.3: BUNDLE_ADD messages are held and applied all at
once on COMMIT, answered by a COMMIT_REPLY), barriers, and the flow-stats read of our
cookies.
"""
from __future__ import annotations

from types import SimpleNamespace

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.flows import Flow

DP = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)


def flow_key(table: int, priority: int, match) -> tuple:
    return (int(table), priority, tuple(sorted(match.items())))


class FakeOFTable:
    def __init__(self):
        self.flows: dict[tuple, int] = {}          # (table, priority, match) -> cookie
        self.bundles: dict[int, list] = {}
        self.replies: list = []
        self.received = 0
        self._xid = 0

    def send(self, msg) -> None:
        self._xid += 1
        msg.set_xid(self._xid)
        msg.serialize()
        self.received += 1
        if isinstance(msg, parser.ONFBundleAddMsg):
            self.bundles.setdefault(msg.bundle_id, []).append(msg.message)
        elif isinstance(msg, parser.ONFBundleCtrlMsg):
            assert msg.type == ofp.ONF_BCT_COMMIT_REQUEST, msg.type
            for held in self.bundles.pop(msg.bundle_id, []):
                self._apply(held)
            self.replies.append(parser.ONFBundleCtrlMsg(DP, msg.bundle_id, ofp.ONF_BCT_COMMIT_REPLY, msg.flags, []))
        elif isinstance(msg, parser.OFPBarrierRequest):
            self.replies.append(parser.OFPBarrierReply(DP))
        else:
            self._apply(msg)

    def _apply(self, msg) -> None:
        assert isinstance(msg, parser.OFPFlowMod), type(msg)
        if msg.command == ofp.OFPFC_ADD:
            self.flows[flow_key(msg.table_id, msg.priority, msg.match)] = msg.cookie
        elif msg.command == ofp.OFPFC_DELETE:
            assert msg.table_id == ofp.OFPTT_ALL and msg.cookie_mask == 2**64 - 1, "we delete by exact cookie"
            self.flows = {k: c for k, c in self.flows.items() if c != msg.cookie}
        else:
            raise AssertionError(f"unexpected FLOW_MOD command {msg.command}")

    def cookies(self) -> set[int]:
        """What a flow-stats read of our cookies would return."""
        return set(self.flows.values())

    def holds_exactly(self, wanted: dict[int, Flow] | list[Flow]) -> bool:
        return self.flows == expected(wanted)


def expected(wanted) -> dict[tuple, int]:
    flows = wanted.values() if isinstance(wanted, dict) else wanted
    return {flow_key(f.table, f.priority, parser.OFPMatch(**dict(f.match))): f.cookie for f in flows}
