"""Frames a misbehaving VM sends, for the lab's checks: run inside a VM's namespace.

    python -m mininet_topos.craft send '{"eth_src": ..., "kind": "udp", ...}' [COUNT]
    python -m mininet_topos.craft storm routed|arp SECONDS '{"eth_src": ..., "targets": [...]}'

`send` builds frames with scapy (UDP to MARKER_PORT, ARP of any opcode, optionally 802.1Q
tagged) and prints how many it sent. `storm` sends prebuilt frames as fast as a raw socket
takes them for SECONDS and prints the count: routed UDP to unknown hosts (each a next hop the
router must resolve) or broadcast ARP requests for unknown addresses.
"""
from __future__ import annotations

import json
import socket
import sys
import time

MARKER_PORT = 9999       # the checks' receivers count UDP to this port


def frame(spec: dict) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    eth = Ether(src=spec["eth_src"], dst=spec.get("eth_dst", "ff:ff:ff:ff:ff:ff"))
    if spec.get("vlan"):
        eth = eth / Dot1Q(vlan=spec["vlan"])
    if spec["kind"] == "arp":
        body = ARP(op=spec.get("op", 1), hwsrc=spec.get("hwsrc", spec["eth_src"]), psrc=spec["psrc"],
                   hwdst=spec.get("hwdst", "00:00:00:00:00:00"), pdst=spec["pdst"])
    else:
        body = IP(src=spec["ip_src"], dst=spec["ip_dst"], ttl=64) / UDP(sport=spec.get("sport", 40000), dport=MARKER_PORT) \
            / (spec.get("payload", "packetwalk-check").encode())
    return bytes(eth / body)


def send(spec: dict, count: int, iface: str = "eth0") -> int:
    data = frame(spec)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        for _ in range(count):
            s.send(data)
    return count


def storm(kind: str, seconds: float, spec: dict, iface: str = "eth0") -> int:
    frames = []
    for ip in spec["targets"]:
        if kind == "routed":
            frames.append(frame({"kind": "udp", "eth_src": spec["eth_src"], "eth_dst": spec["vmac"],
                                 "ip_src": spec["ip_src"], "ip_dst": ip}))
        else:
            frames.append(frame({"kind": "arp", "eth_src": spec["eth_src"], "psrc": spec["ip_src"], "pdst": ip}))
    sent, end = 0, time.monotonic() + seconds
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        while time.monotonic() < end:
            for f in frames:
                try:
                    s.send(f)
                    sent += 1
                except OSError:          # the veth's queue is full: the datapath is behind
                    pass
    return sent


def main(argv: list[str]) -> int:
    if argv[0] == "send":
        print(send(json.loads(argv[1]), int(argv[2]) if len(argv) > 2 else 1))
    elif argv[0] == "storm":
        print(storm(argv[1], float(argv[2]), json.loads(argv[3])))
    else:
        print(f"unknown command {argv[0]!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
