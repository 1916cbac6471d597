"""The scale scenario's changes (packetwalk/bench_scale.py): VM ports plugged and unplugged
on the emulated fleet, each timed until the hypervisors themselves hold the result, and the
controller's CPU for an attach.

What an attach is: a logical port made through the API (untimed), then its VM port plugged
on the first hypervisor, on a switch it already hosts. It touches its own hypervisor and
every hypervisor that reaches the switch (the tenant's router joins its switches).

Three measurements, kept apart so that one does not disturb the other:
- learn (untimed): a first attach whose touched hypervisors' tables are read whole before
  and after (by cookie) says which hypervisors an attach changes and by how many flows, and
  the controller's own counter says how many flow-mods it sent for it; every later attach is
  the same operation on a new port, so it must bring the same;
- rounds (latency): one attach at a time, from the plug until every touched hypervisor holds
  the new flows (read from its br-int over OpenFlow, not from the controller), and, in the
  same loop, until the controller's API says the change is realized (`GET /v1/realized`, its
  `--wait=hv`): the switches are read right after the API says so, and a "realized" the
  switches do not yet show is counted (it must stay 0). Then the unplug: until the port's
  hypervisor holds the move hold's flows (a port that leaves keeps its place for HOLD s in
  case it shows up elsewhere: its frames are held, not dropped), until the API says that is
  realized (the switch is read right after, as for the attach; looking at the switch alone
  takes a whole flow dump each time: the port's flows are replaced in place, their count
  does not change), and until every touched hypervisor is back where it was (after the hold);
- batches (CPU): `batch` attaches one after another in one window rounded up to an even
  number of seconds (the controller's periodic work runs every one or two seconds), against its idle rate, the
  mean of a window just before and one as long as the batch's just after; per attach =
  (window's CPU - idle rate x window) / batch. CPU from /proc/PID/stat (every thread, those
  that ended too: 10 ms ticks); no API call in the windows.
"""
from __future__ import annotations

import dataclasses
import math
import os
import statistics
import threading
import time
from pathlib import Path

from controller.mobility import HOLD
from dataplane.hypervisor import VmPort
from dataplane.ofprobe import BrIntProbe
from mininet_topos.lab import LabError

POLL = 0.002                 # s between looks during a timed change
TAIL = 0.5                   # s a CPU window runs on after its last confirmation (work after it counts)
TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """CPU seconds of a process so far, every thread counted (those that ended too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK          # utime + stime


@dataclasses.dataclass
class Attach:
    """Where the scenario attaches, and what an attach brings there (learned once)."""
    hv: str
    switch: object                      # topology's LogicalSwitch
    touched: list[str]                  # hypervisors that reach the switch (and hv)
    delta: dict[str, int] = dataclasses.field(default_factory=dict)   # flows an attach adds, per hypervisor
    changed: list[str] = dataclasses.field(default_factory=list)      # hypervisors whose flows it changes
    blind: list[str] = dataclasses.field(default_factory=list)        # ... whose count it does not change
    flows_changed: int = 0              # flows added plus deleted on the switches (by cookie)
    flow_mods: int = 0                  # flow-mods the controller sent for it (its own counter)
    made: int = 0                       # ports made so far

    def port(self) -> tuple[VmPort, str]:
        k = self.made
        self.made += 1
        sw = self.switch
        return (VmPort(f"a{k}", f"a{k}", f"00:50:58:00:{k >> 8 & 255:02x}:{k & 255:02x}", sw.name, sw.vni),
                str(sw.subnet.network_address + 50 + k))


def where(topo) -> Attach:
    first = topo.vms[0]
    sw = topo.switch(first.switch)
    router = next(r for r in topo.routers if any(i.switch == sw.name for i in r.interfaces))
    joined = {i.switch for i in router.interfaces}
    return Attach(first.hypervisor, sw, sorted({first.hypervisor} | {v.hypervisor for v in topo.vms
                                                                      if v.switch in joined}))


def measure(ctl, fleet, topo, rounds: int, batches: int, batch: int, quiet: float, idle_s: float,
            progress) -> dict:
    a = where(topo)
    _learn(ctl, fleet, a, quiet)
    out = {"touched": len(a.changed), "flow_mods_per_attach": a.flow_mods, "flows_changed_per_attach":
           a.flows_changed, "rounds": [], "batches": [], "batch": batch}
    for i in range(rounds):
        progress(f"attach {i + 1} of {rounds}: timed until every hypervisor it touches holds it, then the detach")
        out["rounds"].append(_round(ctl, fleet, a, quiet))
    for i in range(batches):
        progress(f"CPU: batch {i + 1} of {batches}, {batch} attaches in one window against the idle rate")
        out["batches"].append(_batch(ctl, fleet, a, batch, quiet, idle_s))
    return out


def _flow_mods(ctl) -> int:
    return sum(h.get("flow_mods", 0) for h in ctl.call("GET", "/hypervisors"))


def _create(ctl, fleet, a: Attach, count: int, quiet: float):
    """`count` new logical ports (untimed); the touched hypervisors' tables once settled."""
    base = fleet.observe(a.touched)
    ports = [a.port() for _ in range(count)]
    for port, ip in ports:
        ctl.call("POST", "/logical-ports", {"name": port.vm, "switch": a.switch.name, "mac": port.mac, "ips": [ip]})
    return [p for p, _ in ports], base, settled(fleet, a.touched, base, quiet)


def _remove(ctl, fleet, a: Attach, ports, base):
    for port in ports:
        ctl.call("DELETE", f"/logical-ports/{port.vm}")
    until(fleet, a.touched, lambda now: now == base, "the logical ports' deletion", HOLD + 30)


def _learn(ctl, fleet, a: Attach, quiet: float):
    (port,), base, before = _create(ctl, fleet, a, 1, quiet)
    cookies, mods = fleet.cookies(a.touched), _flow_mods(ctl)
    fleet.vsctl(a.hv, *port.vsctl_args())
    after = settled(fleet, a.touched, before, quiet, change=True)    # (a busy controller: > 3 s)
    now = fleet.cookies(a.touched)
    a.flow_mods = _flow_mods(ctl) - mods
    a.flows_changed = sum(len(cookies[h] ^ now[h]) for h in a.touched)
    a.delta = {h: after[h][0] - before[h][0] for h in a.touched}
    a.changed = [h for h in a.touched if cookies[h] != now[h]]
    a.blind = [h for h in a.changed if not a.delta[h]]
    fleet.vsctl(a.hv, f"del-port br-int {port.port}")
    until(fleet, a.touched, lambda now: now == before, "the detach", HOLD + 30)
    _remove(ctl, fleet, a, [port], base)


def _round(ctl, fleet, a: Attach, quiet: float) -> dict:
    (port,), base, before = _create(ctl, fleet, a, 1, quiet)
    want = {h: (before[h][0] + a.delta[h], before[h][1]) for h in a.touched}
    blind = fleet.cookies(a.blind) if a.blind else {}
    mods = _flow_mods(ctl)

    def attached(probe):
        return fleet.observe(a.touched, probe) == want and (
            not blind or all(c != blind[h] for h, c in fleet.cookies(a.blind, probe).items()))
    r = timed(ctl, lambda: fleet.vsctl(a.hv, *port.vsctl_args()), attached, "the attach")
    r["flow_mods"] = _flow_mods(ctl) - mods
    held = fleet.cookies([a.hv])[a.hv]
    d = timed(ctl, lambda: fleet.vsctl(a.hv, f"del-port br-int {port.port}"),
              lambda probe: fleet.cookies([a.hv], probe)[a.hv] != held, "the detach")
    until(fleet, a.touched, lambda now: now == before, "the detach's hold to end", HOLD + 30)
    r.update({f"detach_{k}": v for k, v in d.items()}, detach_cleared_ms=(time.monotonic() - d["t0"]) * 1000)
    _remove(ctl, fleet, a, [port], base)
    return r


def timed(ctl, act, holds, what: str, timeout: float = 30.0) -> dict:
    """Do `act`, then look until `holds(probe)` (the switches hold the change) and, in a
    thread of its own (its own probe), until the API says the change is realized (a
    generation newer than before, then realized up to it): the switches are read right
    after the API says so. Times in ms from the act."""
    gen0 = ctl.call("GET", "/realized")["generation"]
    api: dict = {}
    stop = threading.Event()

    def watch():
        probe, gen = BrIntProbe(), None
        try:
            while not stop.is_set():
                r = ctl.call("GET", "/realized")
                gen = gen or (r["generation"] if r["generation"] > gen0 else None)
                if gen and r["realized"] >= gen:
                    api["t"] = time.monotonic()
                    api["early"] = not holds(probe)
                    return
                time.sleep(POLL)
        except Exception as e:          # handed to the measuring thread
            api["error"] = e
        finally:
            probe.close()
    watcher = threading.Thread(target=watch, name="realized-watch", daemon=True)
    watcher.start()
    t0 = time.monotonic()
    try:
        act()
        acted, looks = time.monotonic(), 0
        while not holds(None):
            looks += 1
            if time.monotonic() - t0 > timeout:
                raise LabError(f"{what} was not held by the switches within {timeout:.0f} s")
            time.sleep(POLL)
        sw_t = time.monotonic()
        watcher.join(max(0.0, t0 + timeout - sw_t))
    finally:
        stop.set()
    if "error" in api:
        raise LabError(f"{what}: the API: {api['error']}")
    if "t" not in api:
        raise LabError(f"{what} was not realized (GET /v1/realized) within {timeout:.0f} s")
    return {"t0": t0, "switches_ms": (sw_t - t0) * 1000, "realized_ms": (api["t"] - t0) * 1000,
            "realized_early": api["early"], "act_ms": (acted - t0) * 1000,
            "look_ms": (sw_t - acted) * 1000 / max(1, looks)}


def _batch(ctl, fleet, a: Attach, count: int, quiet: float, idle_s: float) -> dict:
    ports, base, before = _create(ctl, fleet, a, count, quiet)
    cpu0 = process_cpu_s(ctl.pid)
    time.sleep(idle_s)                        # measurement windows, not waits
    idle_before = (process_cpu_s(ctl.pid) - cpu0) / idle_s
    db0 = process_cpu_s(ctl.database_server())
    t0, cpu0 = time.monotonic(), process_cpu_s(ctl.pid)
    for j, port in enumerate(ports, start=1):
        fleet.vsctl(a.hv, *port.vsctl_args())
        want = {h: (before[h][0] + j * a.delta[h], before[h][1]) for h in a.touched}
        until(fleet, a.touched, lambda now: now == want, f"attach {j} of the batch")
    busy = time.monotonic() - t0
    window = 2 * math.ceil((busy + TAIL) / 2)     # even seconds: the drop counters are read every 2 s
    time.sleep(max(0.0, t0 + window - time.monotonic()))     # the window's end, whole seconds from its start
    cpu1 = process_cpu_s(ctl.pid)
    db = process_cpu_s(ctl.database_server()) - db0
    time.sleep(window)
    idle_after = (process_cpu_s(ctl.pid) - cpu1) / window
    idle = (idle_before + idle_after) / 2
    for port in ports:
        fleet.vsctl(a.hv, f"del-port br-int {port.port}")
    until(fleet, a.touched, lambda now: now == before, "the batch's detaches", HOLD + 30)
    _remove(ctl, fleet, a, ports, base)
    return {"cpu_per_attach_ms": (cpu1 - cpu0 - idle * window) / count * 1000, "window_s": window, "busy_s": busy,
            "uncertainty_ms": abs(idle_before - idle_after) / 2 * window / count * 1000,
            "window_cpu_s": cpu1 - cpu0, "idle_pct": idle * 100, "idle_pcts": (idle_before * 100, idle_after * 100),
            "db_cpu_per_attach_ms": db / count * 1000}


def settled(fleet, names, was: dict, quiet: float, timeout: float = 30.0, change: bool = False) -> dict:
    """The hypervisors' (flows, tunnels) once they changed from `was` and then stayed the
    same for `quiet` s (untimed steps only); unless `change` (a plug must change them), also
    once they stayed as they were 3 x `quiet` s."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        now = fleet.observe(names)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet and (now != was or not change and time.monotonic() - since >= 3 * quiet):
            return now
        time.sleep(0.05)
    raise LabError(f"the hypervisors' tables did not settle within {timeout:.0f} s")


def until(fleet, names, condition, what: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        now = fleet.observe(names)
        if condition(now):
            return now
        if time.monotonic() > deadline:
            raise LabError(f"{what} was not confirmed on {len(names)} hypervisors within {timeout:.0f} s")
        time.sleep(POLL)


def summary(out: dict) -> dict:
    """The rounds and batches as the figures' numbers: p50/p95 of the times, the CPU per
    attach's p50 and spread."""
    rounds, batches = out["rounds"], out["batches"]

    def col(key):
        return [r[key] for r in rounds]
    cpu = [b["cpu_per_attach_ms"] for b in batches]
    return {
        "touched": out["touched"], "flow_mods_per_attach": out["flow_mods_per_attach"],
        "flows_changed_per_attach": out["flows_changed_per_attach"],
        "flow_mods_rounds": col("flow_mods"),
        "attach_ms": col("switches_ms"), "attach_realized_ms": col("realized_ms"),
        "realized_early": sum(r["realized_early"] for r in rounds) + sum(r["detach_realized_early"] for r in rounds),
        "look_ms": statistics.median(col("look_ms")), "plug_ms": statistics.median(col("act_ms")),
        "detach_ms": col("detach_switches_ms"), "detach_realized_ms": col("detach_realized_ms"),
        "detach_look_ms": statistics.median(col("detach_look_ms")),
        "detach_cleared_ms": col("detach_cleared_ms"),
        "cpu_per_attach_ms": statistics.median(cpu), "cpu_per_attach_all_ms": cpu,
        "cpu_batch": out["batch"],
        "cpu_windows_s": [b["window_s"] for b in batches],
        "idle_cpu_pct": statistics.median(b["idle_pct"] for b in batches),
        "db_cpu_per_attach_ms": statistics.median(b["db_cpu_per_attach_ms"] for b in batches),
        "cpu_uncertainty_ms": statistics.median(b["uncertainty_ms"] for b in batches),
    }
