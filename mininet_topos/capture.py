"""Count frames on the underlay: tcpdump on the lab's own bridge, started and stopped by pid."""
from __future__ import annotations

import re
import signal
import subprocess
import tempfile
from pathlib import Path

from mininet_topos.lab import UNDERLAY, wait_for

# tcpdump: -Z root keeps it able to write into our temporary directory; --immediate-mode
# hands every packet over at once (otherwise a short capture stopped by SIGINT loses the
# packets still waiting in the kernel's ring buffer).
# Offsets into a VXLAN packet's UDP header: 8 (UDP) + 8 (VXLAN) + 12 (inner MACs) = inner ethertype.
INNER_ETHERTYPE = "udp[28:2]"
ARP_ON_UNDERLAY = f"arp or (udp port 4789 and {INNER_ETHERTYPE} = 0x0806)"
ICMP_IN_VXLAN = f"udp port 4789 and {INNER_ETHERTYPE} = 0x0800 and udp[39] = 1"   # inner IPv4 proto
# The physical baseline carries VM frames themselves, 802.1Q-tagged on the trunks.
ARP_ON_PHYSICAL = "arp or (vlan and arp)"
ICMP_ON_PHYSICAL = "icmp or (vlan and icmp)"


def vm_arp(kind: str) -> str:
    """VM ARP frames as they cross the underlay / physical switch."""
    return ARP_ON_PHYSICAL if kind == "physical" else ARP_ON_UNDERLAY


def vm_icmp(kind: str) -> str:
    return ICMP_ON_PHYSICAL if kind == "physical" else ICMP_IN_VXLAN


class Capture:
    """with Capture(ARP_ON_UNDERLAY) as cap: ...;  then cap.count / cap.lines
    `netns`: capture inside one of the lab's namespaces (e.g. "pw-vm3", interface "eth0")."""

    def __init__(self, bpf: str, interface: str = UNDERLAY, netns: str | None = None):
        self.bpf, self.interface = bpf, interface
        self.prefix = ["ip", "netns", "exec", netns] if netns else []
        self.dir = Path(tempfile.mkdtemp(prefix="pw-capture-"))
        self.pcap = self.dir / "underlay.pcap"
        self.lines: list[str] = []

    def __enter__(self):
        err = self.dir / "tcpdump.err"
        self.proc = subprocess.Popen(self.prefix + ["tcpdump", "-Z", "root", "--immediate-mode", "-i", self.interface,
                                                    "-U", "-n", "-w", str(self.pcap), self.bpf],
                                     stdout=subprocess.DEVNULL, stderr=err.open("w"))
        try:
            wait_for(lambda: "listening on" in err.read_text() or self.proc.poll() is not None, 10,
                     f"tcpdump on {self.interface}")
            if self.proc.poll() is not None:
                raise RuntimeError(f"tcpdump failed: {err.read_text().strip()}")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc):
        self._stop()

    def _stop(self):
        """Stop our tcpdump (by its pid), read what it caught, remove its files."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        out = subprocess.run(["tcpdump", "-n", "-v", "-r", str(self.pcap)], capture_output=True, text=True).stdout
        # a packet's first line starts with its timestamp; VXLAN's inner packet follows on the next
        self.lines = [line for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d+ ", line)]
        self.text = out
        for f in self.dir.iterdir():
            f.unlink()
        self.dir.rmdir()

    @property
    def count(self) -> int:
        return len(self.lines)
