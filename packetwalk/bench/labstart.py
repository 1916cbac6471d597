"""lab-start: seconds from starting a lab to ready (every hypervisor connected, every VM's
binding learned, every tunnel up), and how many of the all-pairs first pings on the fresh
lab fail, beside the reference OVN lab built the same way on this kind of machine."""
from __future__ import annotations

import time

from mininet_topos import checks
from mininet_topos.lab import LabError
from packetwalk.bench import figure, labs

REFERENCE = "reference OVN 23.03 lab"
# (hypervisors, VMs each) -> seconds; the incremental-engine issue's targets are these figures
OVN_START_S = {(2, 2): 0.7, (8, 4): 3.3, (32, 1): 10.0}
OVN_FIRST_PING_FAILED = {(2, 2): (2, 12), (4, 4): (10, 240), (8, 4): (56, 992)}
# where a start's time goes: (step, the lab's progress line that ends it)
STEPS = (("network built", "ovsdb-server + ovs-vswitchd each"),
         ("hypervisors' daemons up", "the hypervisors' daemons are up"),
         ("controller listening with the intent", "the controller listens and holds the intent"),
         ("every hypervisor connected", "every hypervisor connected"),
         ("controller sent everything, bindings learned", "the controller has sent every"),
         ("confirmed on every br-int", "every br-int holds it"),
         ("VTEPs resolved: ready", "ready after"))


def steps(stamped: list[tuple[float, str]]) -> str:
    """'step t, ...': seconds from the start (its first "building" line: a lab that ran before
    is stopped first) at which each step ended (the first line that says so)."""
    t0 = next((t for t, line in stamped if ": building " in line), 0.0)
    found = [(name, next((t - t0 for t, line in stamped if needle in line), None)) for name, needle in STEPS]
    return ", ".join(f"{name} {t:.2f}" for name, t in found if t is not None)


def run(quick: bool, progress) -> dict:
    sizes = [(2, 2)] if quick else [(2, 2), (4, 4), (8, 4), (32, 1), (64, 1)]
    figs = {}
    for h, v in sizes:
        size, at = f"{h}x{v}", {"hypervisors": h, "vms": h * v}
        ref = OVN_START_S.get((h, v))
        progress(f"{size}: starting a lab")
        stamped: list[tuple[float, str]] = []
        t0 = time.monotonic()

        def stamp(line):
            stamped.append((time.monotonic() - t0, line))
            progress(line)
        try:
            lab, seconds = labs.start(labs.grid(h, v), stamp)
        except LabError as e:
            figs[f"start_s@{size}"] = figure(None, "s", baseline=ref, baseline_of=REFERENCE if ref else None,
                                             target=("<=", ref) if ref else None, at=at,
                                             note=f"did not come up: {e}")
            continue
        figs[f"start_s@{size}"] = figure(round(seconds, 2), "s", baseline=ref, baseline_of=REFERENCE if ref else None,
                                         target=("<=", ref) if ref else None, at=at,
                                         note=f"s from the start at which each step ended: {steps(stamped)}")
        progress(f"{size}: first ping between every pair of VMs")
        ping = checks.pingall(lab)
        failed = sum(v == "unreachable" for row in ping["matrix"].values() for v in row.values())
        ovn = OVN_FIRST_PING_FAILED.get((h, v))
        figs[f"first_ping_failed@{size}"] = figure(
            failed, f"of {ping['pairs']} pairs", baseline=ovn[0] if ovn else None,
            baseline_of=f"{REFERENCE} (of {ovn[1]} pairs)" if ovn else None, target=("==", 0), at=at)
    return figs
