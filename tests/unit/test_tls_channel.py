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


def test_os_ken_hands_only_tls_sockets_over_serialized(monkeypatch, pki):
    from os_ken.base import app_manager  # noqa: F401  first: os-ken's modules import each other
    from os_ken.controller import controller as ofc
    seen = []
    monkeypatch.setattr(ofc, "datapath_connection_factory", lambda sock, address: seen.append(sock))
    tls_channel.serialize_openflow_tls()
    tls_channel.serialize_openflow_tls()          # once is enough: not wrapped twice
    ctl, sw = tls_pair(pki)
    plain = socket.socket()
    try:
        ofc.datapath_connection_factory(ctl, ("192.0.2.1", 1))
        ofc.datapath_connection_factory(plain, ("192.0.2.1", 2))
    finally:
        plain.close()
        sw.close()
    assert isinstance(seen[0], Serialized) and seen[0]._sock is ctl
    assert seen[1] is plain
