"""Count frames on the underlay: tcpdump on the lab's own bridge, started and stopped by pid."""
from __future__ import annotations

import signal
import subprocess
import tempfile
from pathlib import Path

from mininet_topos.lab import UNDERLAY, wait_for

# Offsets into a VXLAN packet's UDP header: 8 (UDP) + 8 (VXLAN) + 12 (inner MACs) = inner ethertype.
INNER_ETHERTYPE = "udp[28:2]"
ARP_ON_UNDERLAY = f"arp or (udp port 4789 and {INNER_ETHERTYPE} = 0x0806)"


class Capture:
    """with Capture(ARP_ON_UNDERLAY) as cap: ...;  then cap.count / cap.lines"""

    def __init__(self, bpf: str, interface: str = UNDERLAY):
        self.bpf, self.interface = bpf, interface
        self.dir = Path(tempfile.mkdtemp(prefix="pw-capture-"))
        self.pcap = self.dir / "underlay.pcap"
        self.lines: list[str] = []

    def __enter__(self):
        err = self.dir / "tcpdump.err"
        self.proc = subprocess.Popen(["tcpdump", "-i", self.interface, "-U", "-n", "-w", str(self.pcap), self.bpf],
                                     stdout=subprocess.DEVNULL, stderr=err.open("w"))
        wait_for(lambda: "listening on" in err.read_text() or self.proc.poll() is not None, 10,
                 f"tcpdump on {self.interface}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"tcpdump failed: {err.read_text().strip()}")
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(10)
        out = subprocess.run(["tcpdump", "-n", "-r", str(self.pcap)], capture_output=True, text=True).stdout
        self.lines = out.splitlines()
        for f in self.dir.iterdir():
            f.unlink()
        self.dir.rmdir()

    @property
    def count(self) -> int:
        return len(self.lines)
