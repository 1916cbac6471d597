"""Nicira extension actions Open vSwitch has and os-ken 4 does not encode.

check_pkt_larger(LEN)->DST: OVS >= 2.12 (NXAST_CHECK_PKT_LARGER, subtype 49). It writes 1
to the one-bit field DST if the packet (its whole frame) is longer than LEN bytes, else 0.
OpenFlow cannot match on a packet's size; this action is how OVS lets a flow tell. The
wire format, from OVS's lib/ofp-actions.c (struct nx_action_check_pkt_larger):

    type=0xffff len=24 vendor=0x00002320 subtype=49 | pkt_len:16 offset:16 dst:NXM/OXM header | pad
"""
from __future__ import annotations

import struct

from os_ken.lib.pack_utils import msg_pack_into
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

NXAST_CHECK_PKT_LARGER = 49


class NXActionCheckPktLarger(parser.NXAction):
    _subtype = NXAST_CHECK_PKT_LARGER
    _fmt_str = "!HH4s"        # pkt_len, offset, dst (a 4-byte NXM header: registers are)

    def __init__(self, pkt_len: int, dst: str, offset: int = 0,
                 type_=None, len_=None, experimenter=None, subtype=None):
        super().__init__()
        self.pkt_len, self.dst, self.offset = pkt_len, dst, offset

    @classmethod
    def parser(cls, buf):
        pkt_len, offset, oxm_data = struct.unpack_from(cls._fmt_str, buf, 0)
        n, _ = ofp.oxm_parse_header(oxm_data, 0)
        return cls(pkt_len, ofp.oxm_to_user_header(n), offset)

    def serialize_body(self):
        data, oxm_data = bytearray(), bytearray()
        ofp.oxm_serialize_header(ofp.oxm_from_user_header(self.dst), oxm_data, 0)
        msg_pack_into(self._fmt_str, data, 0, self.pkt_len, self.offset, bytes(oxm_data))
        msg_pack_into("!%dx" % (14 - len(data)), data, len(data))      # 10 + 14 = 24 bytes
        return data


parser.NXAction.register(NXActionCheckPktLarger)
