"""OpenFlow over TLS on os-ken's native threads: one SSL object, one thread at a time.

os-ken serves each switch with two threads on one socket: one reads (Datapath._recv_loop)
and one writes (_send_loop). On a plain socket that is fine. An SSLSocket is one OpenSSL SSL
object, which two threads must not use at once, and CPython takes no lock of its own (it
lets go of the GIL inside SSL_read and SSL_write). Under load the two overlap: a read ends in
a spurious EOF, os-ken closes the connection, the switch reconnects, and its VMs lose traffic
in the meantime (an ARP storm with `lab --ssl` lost 28-56 pings this way). Sometimes the
process crashes.

`Serialized` takes turns: the reader waits for data outside the lock, then reads only what
is already there without blocking; the writer, likewise, hands OpenSSL only what the socket
takes at once and waits for room outside the lock (holding it through a full socket would
keep the reader from the switch's echo replies, and two such ends would wait for each other
for ever). Everything else (setsockopt, shutdown, close) goes straight to the
socket, as it does on a plain one.

The handshake itself (`accept_tls`, in place of os-ken's server's) has a deadline, and a
peer it refuses (no certificate, a stranger's, plain TCP) is logged one line per cause per
interval: os-ken's own server logs a traceback per peer and waits on a silent one for ever.
"""
from __future__ import annotations

import errno
import logging
import select
import socket
import ssl
import threading
import time

from controller.ratelimit import LogLimiter

LOG = logging.getLogger("packetwalk.controller")


class Serialized:
    """An SSLSocket that one thread at a time reads or writes."""

    def __init__(self, sock: ssl.SSLSocket):
        self._sock = sock
        self._lock = threading.Lock()
        self._timeout = sock.gettimeout()

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def settimeout(self, timeout: float | None) -> None:
        with self._lock:
            self._timeout = timeout
            self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def sendall(self, data) -> None:
        """All of `data`, as socket.sendall (socket.timeout if the peer takes none of it for
        the socket's timeout). The lock is held only while OpenSSL takes what the socket
        takes at once: a writer waiting for a full socket keeps no reader out."""
        view, deadline = memoryview(data), self._deadline()
        while view:
            wants = None
            with self._lock:
                self._sock.settimeout(0.0)
                try:
                    view = view[self._sock.send(view):]
                except ssl.SSLWantWriteError:
                    wants = "write"         # the socket is full: the same bytes again later
                except ssl.SSLWantReadError:
                    wants = "read"
                finally:
                    self._sock.settimeout(self._timeout)
            if wants:
                self._wait(wants, deadline)

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes, as socket.recv: b'' at the end of the stream, socket.timeout
        after the socket's timeout with nothing to read."""
        deadline = self._deadline()
        while True:
            with self._lock:
                self._sock.settimeout(0.0)
                try:
                    return self._sock.recv(size)
                except ssl.SSLWantReadError:
                    wants = "read"          # no whole TLS record here yet
                except ssl.SSLWantWriteError:
                    wants = "write"
                finally:
                    self._sock.settimeout(self._timeout)
            self._wait(wants, deadline)

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _wait(self, wants: str, deadline: float | None) -> None:
        """Until the socket can be read (or written), outside the lock."""
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise socket.timeout("timed out")
        fd = self._sock.fileno()
        if fd < 0:                          # closed by another thread meanwhile
            raise OSError(errno.EBADF, "the socket was closed")
        try:
            select.select([fd] if wants == "read" else [], [fd] if wants == "write" else [], [], left)
        except ValueError as e:             # closed between fileno() and select()
            raise OSError(errno.EBADF, "the socket was closed") from e


HANDSHAKE_S = 5.0          # a peer that has not finished its TLS handshake by then is dropped
REFUSED_LOG_INTERVAL = 10.0


class _Refusals:
    """Refused TLS peers, logged one line per cause per interval, with a count (os-ken logs a
    traceback per refused peer: 180 KB for 200 strangers in 0.7 s). Any thread may note."""

    def __init__(self):
        self._lock = threading.Lock()
        self._limiter = LogLimiter(REFUSED_LOG_INTERVAL)

    def note(self, address, error: BaseException) -> None:
        reason = getattr(error, "reason", None)
        cause = reason or type(error).__name__
        why = reason.replace("_", " ").lower() if reason else str(error) or cause
        text = f"OpenFlow: refused a TLS connection from {address[0]}: {why}"
        with self._lock:
            line = self._limiter.note(cause, text, time.monotonic())
        if line:
            LOG.warning("%s", line)


REFUSED = _Refusals()


def accept_tls(ctx: ssl.SSLContext, wrap_args: dict, sock: socket.socket, address, serve) -> None:
    """A switch connected: its TLS handshake within HANDSHAKE_S, then os-ken serves it on a
    Serialized socket. A refused or silent peer costs one line per cause per interval, no
    traceback and no thread held."""
    sock.settimeout(HANDSHAKE_S)
    try:
        tls = ctx.wrap_socket(sock, server_side=True, **wrap_args)
    except (ssl.SSLError, OSError) as e:
        REFUSED.note(address, e)
        sock.close()
        return
    tls.settimeout(None)                # os-ken's Datapath sets its own
    serve(Serialized(tls), address)


def guard_openflow_tls() -> None:
    """Make os-ken's OpenFlow server accept TLS switches through accept_tls (its server
    looks StreamServer up when it runs). The context is set up as os-ken's own server does."""
    from os_ken.base import app_manager  # noqa: F401  first: os-ken's modules import each other
    from os_ken.controller import controller as ofc
    from os_ken.lib import hub
    if getattr(ofc.StreamServer, "guarded_tls", False):
        return

    class GuardedServer(hub.StreamServer):
        guarded_tls = True

        def __init__(self, listen_info, handle=None, backlog=None, spawn="default", **ssl_args):
            super().__init__(listen_info, handle, backlog, spawn)         # listens, plain
            if ssl_args:
                ctx = ssl_args.pop("ssl_ctx")
                ctx.load_cert_chain(ssl_args.pop("certfile"), ssl_args.pop("keyfile"))
                if "cert_reqs" in ssl_args:
                    ctx.verify_mode = ssl_args.pop("cert_reqs")
                if "ca_certs" in ssl_args:
                    ctx.load_verify_locations(ssl_args.pop("ca_certs"))
                ssl_args.pop("server_side", None)
                self.handle = lambda sock, address: accept_tls(ctx, ssl_args, sock, address, handle)

    ofc.StreamServer = GuardedServer
