"""routing-path: the distributed router against a central one, per routed ping: median RTT
and packets on the underlay, on one host and across hosts.

The central router is the physical baseline's (the seed's first scenario as drawn: VLANs
trunked to one router on a stick), not an overlay VM: it is the network the seed compares
with, it is already built and checked (`--test routing` on physical.yaml), and what a
central router costs (every routed packet goes to it and back: the hairpin) is the same
whether its segments are VLANs or VNIs. Its path carries no VXLAN header, which favours
the baseline's RTT a little.
"""
from __future__ import annotations

import re
import statistics

from mininet_topos import checks
from mininet_topos.capture import Capture, vm_icmp
from packetwalk.bench import figure, labs, ratio

EXPECTED_UNDERLAY = {"same_host": 0, "cross_host": 2}   # the distributed router's target, per ping


def measure(lab, kind: str, src, dst, count: int) -> dict:
    """`count` pings src -> dst (after one that resolves ARP): median RTT, underlay packets per ping."""
    node = lab.vm(src.name)
    checks.ping(node, str(dst.ip), count=1)
    with Capture(vm_icmp(lab.topo.kind)) as underlay:
        out = node.cmd(f"ping -n -c {count} -i 0.02 -W 1 {dst.ip}")
    rtts = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
    return {"rtt_ms": round(statistics.median(rtts), 3) if rtts else None, "replies": len(rtts),
            "underlay_packets": round(underlay.count / count, 2)}


def run(quick: bool, progress) -> dict:
    count = 20 if quick else 200
    found = {}
    for kind in ("physical", "overlay"):
        with labs.lab(labs.grid(2, 2, kind), progress) as lab:
            for path, (a, b) in sorted(checks.routed_pairs(lab).items()):
                progress(f"{kind}: {count} routed pings {a.name} -> {b.name} ({path.replace('_', ' ')})")
                found[(kind, path)] = measure(lab, kind, a, b, count)
    figs = {}
    for path in ("same_host", "cross_host"):
        d, c = found[("overlay", path)], found[("physical", path)]
        figs[f"rtt_ms@{path}"] = figure(d["rtt_ms"], "ms", baseline=c["rtt_ms"], baseline_of="central router",
                                        note=f"median of {count}; distributed router {d['replies']} replies, "
                                             f"central {c['replies']}")
        figs[f"rtt_ratio@{path}"] = figure(ratio(c["rtt_ms"], d["rtt_ms"]), "x",
                                           note="central router's median RTT / distributed router's")
        figs[f"underlay_packets_per_ping@{path}"] = figure(
            d["underlay_packets"], "packets", baseline=c["underlay_packets"], baseline_of="central router",
            target=("==", EXPECTED_UNDERLAY[path]))
        figs[f"underlay_packets_ratio@{path}"] = figure(
            ratio(c["underlay_packets"], d["underlay_packets"]), "x",
            note="central / distributed" + ("; none: the distributed router puts 0 on the wire"
                                            if not d["underlay_packets"] else ""))
    return figs
