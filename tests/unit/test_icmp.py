"""The router tells the truth about size: ICMP fragmentation needed with the next-hop MTU
for DF packets, fragments (RFC 791) for the others."""
from __future__ import annotations

from os_ken.lib.packet import ethernet, icmp as oicmp, ipv4, packet, udp
from os_ken.lib.packet.packet_utils import checksum

from controller import icmp

VMAC, VM_MAC = "02:50:56:56:44:52", "00:50:56:00:00:01"


def frame(payload: int, df: bool) -> bytes:
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=VMAC, src=VM_MAC))
    p.add_protocol(ipv4.ipv4(src="10.1.1.11", dst="10.1.2.13", proto=17, flags=2 if df else 0, identification=77))
    p.add_protocol(udp.udp(src_port=1000, dst_port=2000))
    p.add_protocol(bytes(range(256)) * (payload // 256) + bytes(payload % 256))
    p.serialize()
    return bytes(p.data)


def test_fragmentation_needed_carries_the_mtu_and_quotes_the_packet():
    big = frame(1500, df=True)
    assert icmp.dont_fragment(big) and not icmp.dont_fragment(frame(10, df=False))
    reply = packet.Packet(icmp.icmp_error(big, icmp.FRAG_NEEDED, "10.1.1.1", VMAC, VM_MAC, mtu=1450))
    ip, err = reply.get_protocol(ipv4.ipv4), reply.get_protocol(oicmp.icmp)
    assert (ip.src, ip.dst, err.type, err.code, err.data.mtu) == ("10.1.1.1", "10.1.1.11", 3, 4, 1450)
    assert err.data.data == big[14:14 + 20 + 8]


def test_fragments_fit_the_mtu_and_reassemble_to_the_packet():
    original = frame(3000, df=False)
    parts = icmp.fragment(original, 1450)
    ips = [packet.Packet(f).get_protocol(ipv4.ipv4) for f in parts]
    assert all(len(f) - 14 <= 1450 for f in parts) and len(parts) == 3
    assert [ip.flags & 1 for ip in ips] == [1, 1, 0] and all(ip.identification == 77 for ip in ips)
    assert all(checksum(f[14:34]) == 0 for f in parts)              # every header's checksum is right
    body = b"".join(f[34:] for f in sorted(parts, key=lambda f: packet.Packet(f).get_protocol(ipv4.ipv4).offset))
    assert body == original[34:] and [ip.offset * 8 for ip in ips] == [0, 1424, 2848]
