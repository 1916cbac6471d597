"""ICMP errors the distributed router sends from its LIF, built by the controller; and the
fragments of a routed packet too large for the logical MTU.

Pure: (the offending frame, who answers) -> the frame(s) to send.
"""
from __future__ import annotations

import struct

from os_ken.lib.packet import ethernet, ether_types, icmp, ipv4, packet
from os_ken.lib.packet.packet_utils import checksum

from controller.arp import MalformedPacket

TIME_EXCEEDED = (icmp.ICMP_TIME_EXCEEDED, 0)                       # TTL expired in transit
HOST_UNREACHABLE = (icmp.ICMP_DEST_UNREACH, icmp.ICMP_HOST_UNREACH_CODE)
NET_UNREACHABLE = (icmp.ICMP_DEST_UNREACH, 0)                        # no route
FRAG_NEEDED = (icmp.ICMP_DEST_UNREACH, 4)                             # too big, and DF set (RFC 1191)
IP_DF, IP_MF = 0x4000, 0x2000


def parse_ipv4(data: bytes) -> tuple[ethernet.ethernet, ipv4.ipv4, bytes]:
    """The Ethernet and IPv4 headers of a frame, and the IP packet's bytes."""
    try:
        pkt = packet.Packet(data)
    except Exception as e:       # os-ken's parser raises assorted errors on junk
        raise MalformedPacket(f"unparsable frame ({len(data)} bytes): {e}") from e
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4)
    if eth is None or ip is None or eth.ethertype != ether_types.ETH_TYPE_IP:
        raise MalformedPacket(f"not an IPv4 frame ({len(data)} bytes)")
    return eth, ip, data[14:]


def icmp_error(data: bytes, kind: tuple[int, int], router_ip: str, vmac: str, vm_mac: str,
               mtu: int = 0) -> bytes:
    """An ICMP error about `data` (a frame the VM sent), from the router's LIF back to the VM.
    It quotes the offending IP header and 8 bytes of its payload, as RFC 792 asks;
    fragmentation needed carries the next hop's MTU (RFC 1191)."""
    _, ip, ip_bytes = parse_ipv4(data)
    quote = ip_bytes[:ip.header_length * 4 + 8]
    body = (icmp.TimeExceeded(data=quote) if kind[0] == icmp.ICMP_TIME_EXCEEDED
            else icmp.dest_unreach(data=quote, mtu=mtu))
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=vm_mac, src=vmac, ethertype=ether_types.ETH_TYPE_IP))
    p.add_protocol(ipv4.ipv4(src=router_ip, dst=ip.src, proto=1, ttl=64))
    p.add_protocol(icmp.icmp(type_=kind[0], code=kind[1], data=body))
    p.serialize()
    return bytes(p.data)



def dont_fragment(data: bytes) -> bool:
    _, _, ip_bytes = parse_ipv4(data)
    return bool(struct.unpack_from("!H", ip_bytes, 6)[0] & IP_DF)


def fragment(data: bytes, mtu: int) -> list[bytes]:
    """Split the IPv4 packet in frame `data` into fragments of at most `mtu` bytes (RFC 791:
    every fragment but the last carries a multiple of 8 bytes and MF; offsets in 8-byte units)."""
    _, ip, ip_bytes = parse_ipv4(data)
    ihl = ip.header_length * 4
    header, payload = ip_bytes[:ihl], ip_bytes[ihl:ip.total_length]
    flags_offset = struct.unpack_from("!H", header, 6)[0]
    base, more = flags_offset & 0x1FFF, flags_offset & IP_MF
    step = (mtu - ihl) // 8 * 8
    frames = []
    for start in range(0, len(payload), step):
        chunk = payload[start:start + step]
        last = start + step >= len(payload)
        h = bytearray(header)
        struct.pack_into("!HHHH", h, 2, ihl + len(chunk), ip.identification,
                         (more if last else IP_MF) | (base + start // 8), ip.ttl << 8 | ip.proto)
        struct.pack_into("!H", h, 10, 0)
        struct.pack_into("!H", h, 10, checksum(bytes(h)))
        frames.append(data[:14] + bytes(h) + chunk)
    return frames
