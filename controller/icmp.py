"""ICMP errors the distributed router sends from its LIF, built by the controller.

Pure: (the offending frame, who answers) -> the frame to send back to the VM.
"""
from __future__ import annotations

from os_ken.lib.packet import ethernet, ether_types, icmp, ipv4, packet

from controller.arp import MalformedPacket

TIME_EXCEEDED = (icmp.ICMP_TIME_EXCEEDED, 0)                       # TTL expired in transit
HOST_UNREACHABLE = (icmp.ICMP_DEST_UNREACH, icmp.ICMP_HOST_UNREACH_CODE)
NET_UNREACHABLE = (icmp.ICMP_DEST_UNREACH, 0)                        # no route


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


def icmp_error(data: bytes, kind: tuple[int, int], router_ip: str, vmac: str, vm_mac: str) -> bytes:
    """An ICMP error about `data` (a frame the VM sent), from the router's LIF back to the VM.
    It quotes the offending IP header and 8 bytes of its payload, as RFC 792 asks."""
    _, ip, ip_bytes = parse_ipv4(data)
    quote = ip_bytes[:ip.header_length * 4 + 8]
    body = (icmp.TimeExceeded(data=quote) if kind[0] == icmp.ICMP_TIME_EXCEEDED
            else icmp.dest_unreach(data=quote))
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=vm_mac, src=vmac, ethertype=ether_types.ETH_TYPE_IP))
    p.add_protocol(ipv4.ipv4(src=router_ip, dst=ip.src, proto=1, ttl=64))
    p.add_protocol(icmp.icmp(type_=kind[0], code=kind[1], data=body))
    p.serialize()
    return bytes(p.data)

