"""One TLS connection read by one thread and written by another, as os-ken serves a switch
(controller/tls_channel.py). On a bare SSLSocket the two threads share one OpenSSL object:
a read ends in a spurious EOF (or the process crashes) within a few MB."""
from __future__ import annotations

import socket
import ssl
import threading

import pytest

from controller import tls_channel
from controller.tls_channel import Serialized
from dataplane.pki import LabPKI

MESSAGES = 40_000


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return LabPKI(tmp_path_factory.mktemp("pki"), ["hv1"])


def tls_pair(pki) -> tuple[ssl.SSLSocket, ssl.SSLSocket]:
    """(the controller's end, the switch's end) of one TLS connection, both with a timeout."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.controller.cert, pki.controller.key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    a, b = socket.socketpair()
    ends = {}
    handshake = threading.Thread(target=lambda: ends.setdefault("ctl", server.wrap_socket(a, server_side=True)))
    handshake.start()
    ends["sw"] = client.wrap_socket(b)
    handshake.join()
    for end in ends.values():
        end.settimeout(30)
    return ends["ctl"], ends["sw"]


def test_a_reader_and_a_writer_thread_on_each_end_move_every_byte(pki):
    """Each end: one thread sends MESSAGES messages, another reads until it has all the
    other end's; nothing is lost, no read ends early, no error."""
    ctl, sw = (Serialized(s) for s in tls_pair(pki))
    sizes = {"ctl": 1500, "sw": 100}          # flow mods one way, packet-ins the other
    got, errors = {}, []

    def write(end, name):
        try:
            for _ in range(MESSAGES):
                end.sendall(b"x" * sizes[name])
        except OSError as e:
            errors.append(f"{name} send: {e!r}")

    def read(end, name, want):
        n = 0
        try:
            while n < want:
                data = end.recv(65536)
                if not data:
                    errors.append(f"{name} read: end of stream after {n} of {want} bytes")
                    break
                n += len(data)
        except OSError as e:
            errors.append(f"{name} read: {e!r} after {n} of {want} bytes")
        got[name] = n

    threads = [threading.Thread(target=write, args=(ctl, "ctl")), threading.Thread(target=write, args=(sw, "sw")),
               threading.Thread(target=read, args=(ctl, "ctl", MESSAGES * sizes["sw"])),
               threading.Thread(target=read, args=(sw, "sw", MESSAGES * sizes["ctl"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert got == {"ctl": MESSAGES * sizes["sw"], "sw": MESSAGES * sizes["ctl"]}


def test_a_read_with_nothing_to_read_times_out_as_a_socket_does(pki):
    ctl, sw = tls_pair(pki)
    end = Serialized(ctl)
    end.settimeout(0.01)
    with pytest.raises(socket.timeout):
        end.recv(8)
    sw.sendall(b"hello")
    end.settimeout(30)
    assert end.recv(8) == b"hello"


def test_a_peer_that_closes_is_the_end_of_the_stream(pki):
    ctl, sw = tls_pair(pki)
    sw.close()
    assert Serialized(ctl).recv(8) == b""


def _server(pki):
    """os-ken's OpenFlow server as guard_openflow_tls makes it, on a free loopback port, with
    its arguments as os-ken gives them: (server, what it handed on to serve)."""
    from os_ken.base import app_manager  # noqa: F401  first: os-ken's modules import each other
    from os_ken.controller import controller as ofc
    tls_channel.guard_openflow_tls()
    tls_channel.guard_openflow_tls()              # once is enough: not wrapped twice
    assert ofc.StreamServer.__mro__[1].__name__ == "StreamServer"
    served = []
    server = ofc.StreamServer(("127.0.0.1", 0), lambda sock, address: served.append(sock),
                              ssl_ctx=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), certfile=pki.controller.cert,
                              keyfile=pki.controller.key, cert_reqs=ssl.CERT_REQUIRED, ca_certs=pki.controller.ca)
    return server, served


def _connect(server, talk) -> None:
    """A peer connects to `server` and does `talk` with its socket while the server accepts."""
    peer = socket.create_connection(server.server.getsockname(), timeout=10)
    accepted, address = server.server.accept()
    other = threading.Thread(target=talk, args=(peer,), daemon=True)
    other.start()
    try:
        server.handle(accepted, address)
    finally:
        other.join(10)
        peer.close()


def _tls_client(pki, who: str | None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if who:
        creds = pki.hypervisors[who]
        ctx.load_cert_chain(creds.cert, creds.key)

    def talk(sock):
        try:
            with ctx.wrap_socket(sock) as tls:
                tls.sendall(b"hello")
                if not who:
                    tls.recv(8)                 # TLS 1.3: the refusal comes after the client's handshake
        except (OSError, ssl.SSLError):
            pass
    return talk


def test_a_switch_with_its_certificate_is_served_over_serialized(pki):
    server, served = _server(pki)
    try:
        _connect(server, _tls_client(pki, "hv1"))
    finally:
        server.server.close()
    assert len(served) == 1 and isinstance(served[0], Serialized)
    assert served[0].gettimeout() is None          # os-ken's Datapath sets its own
    assert served[0].recv(8) == b"hello"
    served[0].close()


def test_refused_peers_cost_a_line_per_cause_not_a_traceback_each(pki, caplog):
    server, served = _server(pki)
    caplog.set_level("WARNING", logger="packetwalk.controller")
    try:
        for i in range(30):
            _connect(server, _tls_client(pki, None) if i % 2 else (lambda s: s.sendall(b"GET / HTTP/1.0\r\n\r\n")))
    finally:
        server.server.close()
    assert served == []
    lines = [r.getMessage() for r in caplog.records if "refused a TLS connection" in r.getMessage()]
    assert 1 <= len(lines) <= 3, lines          # one per cause (no certificate; not TLS at all)
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in caplog.records)


def test_a_silent_peer_is_dropped_after_the_handshake_deadline(pki, monkeypatch, caplog):
    monkeypatch.setattr(tls_channel, "HANDSHAKE_S", 0.2)
    server, served = _server(pki)
    caplog.set_level("WARNING", logger="packetwalk.controller")
    try:
        _connect(server, lambda sock: sock.recv(1))     # says nothing; hears the server give up
    finally:
        server.server.close()
    assert served == []
    assert any("timed out" in r.getMessage() or "timeout" in r.getMessage() for r in caplog.records)
