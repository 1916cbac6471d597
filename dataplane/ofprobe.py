"""What br-int holds, read from the switch itself: how many of the controller's flows and
how many tunnel ports, over OpenFlow 1.3 on br-int's management socket (the unix socket
ovs-vswitchd serves in its run directory, as ovs-ofctl uses it). One connection per switch,
kept open; every switch asked at once; no process per question. The lab's readiness and
the scale bench confirm with it that what the controller sent is installed.
"""
from __future__ import annotations

import socket
import struct
from pathlib import Path

from os_ken.ofproto import ofproto_parser, ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser

COOKIE_APP, COOKIE_APP_MASK = 0x7077 << 48, 0xFFFF << 48     # the controller's flows (controller/flows.py)
TUNNEL_PREFIX = "vx-"                                        # its tunnel ports (controller/ovsdb.py)


class ProbeError(RuntimeError):
    pass


class BrIntProbe:
    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self._socks: dict[str, socket.socket] = {}

    def observe(self, sockets: dict[str, Path]) -> dict[str, tuple[int, int]]:
        """name -> (our flows on br-int, its tunnel ports), for each name's management socket."""
        replies = self._ask(sockets, [
            parser.OFPAggregateStatsRequest(_DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                            COOKIE_APP, COOKIE_APP_MASK, parser.OFPMatch()),
            parser.OFPPortDescStatsRequest(_DP, 0)])
        return {name: (r[1][0].body.flow_count,
                       sum(1 for m in r[2] for p in m.body if _text(p.name).startswith(TUNNEL_PREFIX)))
                for name, r in replies.items()}

    def cookies(self, sockets: dict[str, Path]) -> dict[str, set[int]]:
        """name -> the cookies of our flows on br-int (a cookie says what a flow is and what
        it holds: two tables with the same cookies hold the same flows)."""
        replies = self._ask(sockets, [parser.OFPFlowStatsRequest(_DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                                                 COOKIE_APP, COOKIE_APP_MASK, parser.OFPMatch())])
        return {name: {f.cookie for m in r[1] for f in m.body} for name, r in replies.items()}

    def _ask(self, sockets: dict[str, Path], requests: list) -> dict[str, dict[int, list]]:
        """Send `requests` (xids 1..n) to every switch, then read every answer. A connection
        the switch closed meanwhile (it drops management connections that stay idle) is
        made again, once."""
        wire = b""
        for xid, req in enumerate(requests, start=1):
            req.set_xid(xid)
            req.serialize()
            wire += req.buf
        out = {}
        for attempt in (1, 2):
            pending = [n for n in sockets if n not in out]
            failed = set()
            for name in pending:
                try:
                    self._connection(name, sockets[name]).sendall(wire)
                except OSError:
                    failed.add(name)
            for name in pending:
                if name in failed:
                    continue
                try:
                    out[name] = _read_replies(self._socks[name], len(requests))
                except (OSError, ProbeError):
                    failed.add(name)
            for name in failed:
                dead = self._socks.pop(name, None)
                if dead:
                    dead.close()
            if not failed:
                return out
        raise ProbeError(f"br-int of {', '.join(sorted(failed)[:5])} does not answer on its management socket")

    def close(self) -> None:
        for s in self._socks.values():
            s.close()
        self._socks.clear()

    def _connection(self, name: str, path: Path) -> socket.socket:
        if name not in self._socks:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(str(path))
            except OSError as e:
                s.close()
                raise ProbeError(f"{name}: cannot reach br-int at {path}: {e.strerror or e}") from None
            hello = parser.OFPHello(_DP)
            hello.serialize()
            s.sendall(hello.buf)
            self._socks[name] = s
        return self._socks[name]


class _DP:
    """What os-ken's message classes need of a datapath to serialize and parse."""
    ofproto, ofproto_parser = ofp, parser

    @staticmethod
    def set_xid(msg):
        pass


def _read_replies(s: socket.socket, wanted: int) -> dict[int, list]:
    """xid -> its multipart replies (all parts), for xids 1..wanted; other messages skipped."""
    replies: dict[int, list] = {}
    done = set()
    while len(done) < wanted:
        head = _recv(s, 8)
        version, msg_type, length, xid = struct.unpack("!BBHI", head)
        body = head + _recv(s, length - 8)
        if msg_type == ofp.OFPT_ECHO_REQUEST:         # keep the connection: answer the switch's echo
            s.sendall(struct.pack("!BBHI", version, ofp.OFPT_ECHO_REPLY, length, xid) + body[8:])
        if msg_type != ofp.OFPT_MULTIPART_REPLY:
            continue                   # the switch's hello, an echo, ...
        msg = ofproto_parser.msg(_DP, version, msg_type, length, xid, body)
        replies.setdefault(xid, []).append(msg)
        if not msg.flags & ofp.OFPMPF_REPLY_MORE:
            done.add(xid)
    return replies


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ProbeError("a switch closed its OpenFlow management socket")
        buf += chunk
    return buf


def _text(name) -> str:
    return name.decode(errors="replace") if isinstance(name, bytes) else name
