"""The scale scenario of `packetwalk bench` (issue 9, item 6): the controller against
hundreds of hypervisors and thousands of VMs on this one machine.

The hypervisors are a dataplane.fleet (see there why: one ovsdb-server + ovs-vswitchd per
hypervisor, each in its own namespace, VM ports as dummy devices), so each speaks real
OpenFlow 1.3 and OVSDB to a real controller process. The network is tenants of 100 VMs:
one distributed router joining 4 logical switches of 25 VMs; VMs are placed in blocks of 5
(5 VMs of one switch on one hypervisor), each hypervisor holds 25 VMs of 5 tenants, each
tenant spans 20 hypervisors. So a hypervisor reaches ~500 VMs, not all of them, as in a
real cloud.

Measured at each size, all confirmed on the hypervisors themselves (their br-int, read over
OpenFlow, not what the controller believes):
- cold: the intent (every switch, router and port) is put into the controller's database
  first (one PUT, timed on its own), with no hypervisor able to reach it; then, with every
  hypervisor up and waiting, from the controller's start on that database until every
  hypervisor holds its wanted flows and tunnel ports (its flow count equals the
  controller's, its tunnel count the topology's): a control plane's cold start;
- attach and detach (packetwalk/bench/scale_changes.py): a VM port plugged on one
  hypervisor until every hypervisor it touches (those that reach its switch) holds the new
  flows, and until the API says it is realized; p50/p95 over several; the unplug until the
  port's hypervisor holds the move hold's flows, and the hold's end until all is as before;
- the controller's CPU for the cold start (from /proc of its pid) and per attach (batches
  of attaches in one window against its idle rate, with their spread), its peak memory;
  flows per hypervisor; flow-mods per attach (the controller's counters).
"""
from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dataplane.fleet import Fleet, Member
from dataplane.hypervisor import OPENFLOW_PORT, VmPort, start_time, stop_all
from mininet_topos import cleanup, readiness
from mininet_topos.lab import LabError, wait_for
from mininet_topos.topology import intent_dict, parse_topology
from packetwalk.bench import figure, scale_changes, within_limit
from packetwalk.bench.convergence import percentile
from packetwalk.show import ShowError, request

SIZES = ((10, 250), (50, 1250), (100, 2500), (200, 5000))    # (hypervisors, VMs)
QUICK = ((4, 20),)
TENANT_SWITCHES, SWITCH_VMS, BLOCK = 4, 25, 5
MANAGEMENT, UNDERLAY = "169.254.78.0/24", "192.168.78.0/24"
CONTROLLER_IP = "169.254.78.1"
API_PORT = 8191                     # not the lab's 8181: the two may run side by side
TARGETS = {"cold": ("<", 10.0), "attach": ("<", 100.0), "cpu_per_attach": ("<", 10.0)}   # at 200 x 5,000
READ_RETRY = 60.0                   # s a read the controller did not answer in time is asked again
RUNDIR = Path(os.environ.get("PACKETWALK_RUNDIR", "/run/packetwalk")) / "scale"


class ScaleError(LabError):
    pass


def topology(hypervisors: int, vms: int) -> dict:
    """The tenants' network as a topology dict (parse_topology's shape)."""
    per_tenant = TENANT_SWITCHES * SWITCH_VMS
    tenants = -(-vms // per_tenant)
    switches, routers, vm_list = [], [], []
    for t in range(tenants):
        lifs = []
        for s in range(TENANT_SWITCHES):
            name = f"t{t}s{s}"
            switches.append({"name": name, "vni": 10000 + t * TENANT_SWITCHES + s,
                             "subnet": f"10.{t // 64}.{(t % 64) * 4 + s}.0/24"})
            lifs.append({"switch": name, "ip": f"10.{t // 64}.{(t % 64) * 4 + s}.1"})
        routers.append({"name": f"r{t}", "interfaces": lifs})
    for k in range(vms):
        t, s, i = k // per_tenant, (k % per_tenant) // SWITCH_VMS, k % SWITCH_VMS
        vm_list.append({"name": f"v{k}", "hypervisor": f"hv{(k // BLOCK) % hypervisors + 1}",
                        "switch": f"t{t}s{s}", "ip": f"10.{t // 64}.{(t % 64) * 4 + s}.{10 + i}",
                        "mac": f"00:50:57:{k >> 16 & 255:02x}:{k >> 8 & 255:02x}:{k & 255:02x}"})
    return {"name": "scale", "kind": "overlay", "underlay": UNDERLAY,
            "management": MANAGEMENT, "hypervisors": [{"name": f"hv{i + 1}"} for i in range(hypervisors)],
            "logical_switches": switches, "logical_routers": routers, "vms": vm_list}


# --- the controller process ---------------------------------------------------------------

class Controller:
    """The controller as a process of ours (and its embedded database server): started,
    asked (API), measured (/proc), stopped by pid."""

    def __init__(self, rundir: Path, listen: str = CONTROLLER_IP):
        self.rundir, self.db_dir, self.listen = rundir, rundir / "controller-db", listen
        self.api = f"http://127.0.0.1:{API_PORT}"
        cmd = [sys.executable, "-m", "packetwalk.cli", "controller", "--db-dir", str(self.db_dir),
               "--ofp-listen-host", listen, "--ofp-tcp-listen-port", str(OPENFLOW_PORT),
               "--api-port", str(API_PORT)]
        env = {**os.environ, "EVENTLET_NO_GREENDNS": "yes"}
        self.log = rundir / "controller.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.pid = self.proc.pid
        self.started = [(self.pid, Path(sys.executable).name, start_time(self.pid))]
        cleanup.Manifest(rundir).add_pid(self.pid, Path(sys.executable).name)

    def database_server(self) -> int | None:
        """Its embedded ovsdb-server, once it runs (recorded, so that it is stopped too)."""
        try:
            pid = int((self.db_dir / "ovsdb-server.pid").read_text())
        except (OSError, ValueError):
            return None
        if pid not in [p for p, _, _ in self.started]:
            self.started.append((pid, "ovsdb-server", start_time(pid)))
            cleanup.Manifest(self.rundir).add_pid(pid, "ovsdb-server")
        return pid

    def call(self, method: str, path: str, body=None):
        """The API's answer. A read the controller's busy app thread did not answer in time
        (its 504) is asked again, for up to READ_RETRY s; a write is not (it may have been made)."""
        deadline = time.monotonic() + READ_RETRY
        while True:
            try:
                return request(self.api, method, "/v1" + path, body, timeout=120.0)
            except ShowError as e:
                if method != "GET" or "did not answer" not in str(e) or time.monotonic() > deadline:
                    raise ScaleError(f"the controller's API: {method} {path}: {e}") from None
                self.alive()

    def alive(self):
        if self.proc.poll() is not None:
            raise ScaleError(f"the controller exited ({self.proc.returncode}); see {self.log}")

    def listening(self) -> bool:
        self.alive()
        with socket.socket() as s:
            return s.connect_ex((self.listen, OPENFLOW_PORT)) == 0

    def cpu_s(self, pid: int | None = None) -> float:
        """CPU seconds of the process so far, every thread counted (those that ended too)."""
        return scale_changes.process_cpu_s(pid or self.pid)

    def peak_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        stop_all(self.started, timeout=10)


# --- measuring ----------------------------------------------------------------------------

def prepare(hypervisors: int, vms: int, rundir: Path):
    """A size's network, what readiness expects of it, and its fleet members; `rundir` made
    empty (refused while anything of a lab or scale run is up)."""
    topo = parse_topology(topology(hypervisors, vms), f"<scale {hypervisors}x{vms}>")
    exp = readiness.expect(topo, {v.name: v.hypervisor for v in topo.vms})
    left = cleanup.leftovers(rundir)
    if left:
        raise ScaleError(f"{', '.join(left[:5])}: another lab or scale run is up, "
                         "or a crashed one left them (`packetwalk lab clean`)")
    shutil.rmtree(rundir, ignore_errors=True)      # the last run's files; nothing of it runs
    rundir.mkdir(parents=True)
    members = [Member(h.name, str(h.mgmt_ip), str(h.vtep_ip), tuple(
        VmPort(v.name, v.name, v.mac, v.switch, topo.switch(v.switch).vni) for v in topo.vms_on(h.name)))
        for h in topo.hypervisors]
    return topo, exp, members


def measure(hypervisors: int, vms: int, progress, attaches: int, quiet: float = 1.0, batches: int = 3,
            batch: int = 20, idle_s: float = 3.0) -> dict:
    """One size: fleet up, controller started and timed to programmed, `attaches` attaches
    timed, `batches` of `batch` attaches for the CPU (packetwalk/bench/scale_changes.py);
    everything stopped. `quiet`: s without change that counts as settled (untimed steps)."""
    topo, exp, members = prepare(hypervisors, vms, RUNDIR)
    fleet = Fleet(RUNDIR, members, CONTROLLER_IP, topo.management.prefixlen, progress)
    ctl = None
    try:
        progress(f"scale {hypervisors}x{vms}: the intent into the controller's database (one PUT)")
        ctl = Controller(RUNDIR, listen="127.0.0.1")        # where no hypervisor reaches it
        wait_for(ctl.listening, 60, "the controller to listen")
        wait_for(ctl.database_server, 10, "the controller's database server")
        t0 = time.monotonic()
        ctl.call("PUT", "/intent", intent_dict(topo))         # every switch, router and port at once
        intent_s = time.monotonic() - t0
        ctl.stop()
        progress(f"scale {hypervisors}x{vms}: starting {hypervisors} emulated hypervisors")
        fleet.start()
        progress(f"scale {hypervisors}x{vms}: the controller starts on that database; "
                 "timing until every hypervisor holds its flows")
        t0 = time.monotonic()
        ctl = Controller(RUNDIR)
        wait_for(ctl.listening, 60, "the controller to listen")
        listen_s = time.monotonic() - t0
        db = wait_for(ctl.database_server, 10, "the controller's database server")
        cold = _cold(ctl, fleet, exp, t0, 60 + 1.5 * hypervisors + 0.02 * vms)
        cold.update(listen_s=listen_s, intent_s=intent_s, cold_cpu_s=ctl.cpu_s(), db_cpu_s=ctl.cpu_s(db),
                    peak_mb_cold=ctl.peak_mb())
        progress(f"scale {hypervisors}x{vms}: programmed from cold in {cold['cold_s']:.1f} s; "
                 f"now {attaches} attaches")
        changes = scale_changes.measure(ctl, fleet, topo, attaches, batches, batch, quiet, idle_s,
                                        lambda m: progress(f"scale {hypervisors}x{vms}: {m}"))
        result = {"hypervisors": hypervisors, "vms": vms, **cold, **scale_changes.summary(changes)}
        result["peak_mb"] = ctl.peak_mb()
        return result
    finally:
        if ctl:
            ctl.stop()
        fleet.stop()
        (RUNDIR / cleanup.MANIFEST).unlink(missing_ok=True)


def _rows(ctl: Controller) -> dict[str, dict]:
    return {h["name"]: h for h in ctl.call("GET", "/hypervisors")}


def _cold(ctl: Controller, fleet: Fleet, exp, t0: float, timeout: float) -> dict:
    """Until every hypervisor is connected with its ports known, holds as many of our flows as
    the controller wants there (and the controller's count did not move since the last look),
    and has every tunnel port the topology implies."""
    done: dict[str, int] = {}
    last: dict[str, int] = {}
    why = ["nothing seen yet"]

    def programmed():
        try:
            rows = _rows(ctl)
        except ScaleError as e:          # busy programming: its API may not answer in time
            why[0] = f"{len(exp.ports) - len(done)} of {len(exp.ports)} hypervisors not programmed; {e}"
            return False
        pending = [h for h in exp.ports if h not in done]
        seen = {h: rows[h] for h in pending if h in rows and rows[h]["openflow"] and rows[h]["ovsdb"]
                and rows[h]["attachments"] == len(exp.ports[h])}
        observed = fleet.observe(seen) if seen else {}
        for h, (flows, tunnels) in observed.items():
            want = seen[h]["flows"]
            if flows == want and want and last.get(h) == want and tunnels == len(exp.tunnels[h]):
                done[h] = flows
            last[h] = want
        why[0] = f"{len(exp.ports) - len(done)} of {len(exp.ports)} hypervisors not programmed " \
                 f"({len(seen)} connected with their ports)"
        return len(done) == len(exp.ports)
    wait_for(programmed, timeout, lambda: why[0], interval=0.05 + len(exp.ports) / 1000)
    cold_s = time.monotonic() - t0
    return {"cold_s": cold_s, "flows_per_hv_mean": statistics.mean(done.values()),
            "flows_per_hv_max": max(done.values()), "tunnels_per_hv_mean":
            statistics.mean(len(t) for t in exp.tunnels.values())}


# --- the scenario -------------------------------------------------------------------------

def run(quick: bool, progress) -> dict:
    """Every size in turn (QUICK with quick); the figures in `packetwalk bench`'s shape."""
    sizes = QUICK if quick else within_limit(SIZES)
    out = {}
    for hypervisors, vms in sizes:
        try:
            r = measure(hypervisors, vms, progress, attaches=3 if quick else 10, quiet=0.3 if quick else 1.0,
                        batches=2 if quick else 3, batch=10 if quick else 40, idle_s=1.0 if quick else 4.0)
        except LabError as e:            # this size says why; the others keep their figures
            progress(f"{hypervisors} x {vms}: not measured: {e}")
            out[f"cold_s@{hypervisors}x{vms}"] = figure(None, "s", at={"hypervisors": hypervisors, "vms": vms},
                                                        note=f"not measured: {e}")
            continue
        out.update(figures(r, targets=(hypervisors, vms) == sizes[-1]))
    return out


def _usable(f: dict, batches: list[float], idle_pct: float) -> dict:
    """CPU per attach is a difference of two windows: when a batch comes out below zero, or
    the batches spread more than their median, the controller's own work while idle moved
    more than the attaches cost; the figure stays, judged against no target."""
    if batches and (min(batches) <= 0 or max(batches) - min(batches) > abs(f["value"])):
        f["met"] = None
        f["note"] = (f"NOT USABLE: the idle controller ({idle_pct:.0f}% of a core) moved the windows more than "
                     f"the attaches cost; " + f["note"])
    return f


def figures(r: dict, targets: bool) -> dict:
    size = f"{r['hypervisors']}x{r['vms']}"
    at = {"hypervisors": r["hypervisors"], "vms": r["vms"]}

    def fig(value, unit, target=None, note=None, samples=None):
        t = TARGETS.get(target) if targets and target else None
        if t and (r["hypervisors"], r["vms"]) != SIZES[-1]:
            note = f"{note + '; ' if note else ''}the target is set for {SIZES[-1][0]} x {SIZES[-1][1]}"
        f = {"value": round(value, 3) if isinstance(value, float) else value, "unit": unit, "baseline": None,
             "baseline_of": None, "target": f"{t[0]} {t[1]:g}" if t else None,
             "met": (value < t[1]) if t else None, "at": at}
        if note:
            f["note"] = note
        if samples is not None:
            f["samples"] = [round(x, 2) for x in samples]
        return f

    def p(values, q):
        return percentile(values, q)
    n, hold = len(r["attach_ms"]), scale_changes.HOLD
    after_hold = [x - hold * 1000 for x in r["detach_cleared_ms"]]
    cpu = r["cpu_per_attach_all_ms"]
    mods = r["flow_mods_rounds"]
    return {
        f"cold_s@{size}": fig(r["cold_s"], "s", "cold", "controller start (its database holding the intent) until "
                              f"every hypervisor holds its flows and tunnels (it listened after {r['listen_s']:.1f} s; "
                              "the hypervisors, waiting, retry once a second)"),
        f"intent_put_s@{size}": fig(r["intent_s"], "s", note=f"PUT /v1/intent: {r['vms']} logical ports, their "
                                    "switches and routers, into an empty controller"),
        f"attach_ms@{size}": fig(p(r["attach_ms"], 50), "ms", "attach",
                                 f"p50 of {n}: VM port plugged (ovs-vsctl add-port, {r['plug_ms']:.0f} ms of it) until "
                                 f"all {r['touched']} hypervisors it changes hold its flows, read from their br-int "
                                 f"(looked at every {r['look_ms']:.1f} ms)", samples=r["attach_ms"]),
        f"attach_p95_ms@{size}": fig(p(r["attach_ms"], 95), "ms", note=f"p95 of the same {n}"),
        f"attach_realized_ms@{size}": fig(p(r["attach_realized_ms"], 50), "ms", note=(
            f"p50 of {n} (p95 {p(r['attach_realized_ms'], 95):.1f}): plug until GET /v1/realized says the change is "
            f"confirmed on every hypervisor it touches (OVN's --wait=hv); said before the switches held it: "
            f"{r['realized_early']} of {2 * n} attaches and detaches"), samples=r["attach_realized_ms"]),
        f"realized_before_switches@{size}": fig(r["realized_early"], "changes", note=(
            f"of {2 * n}: the API said realized while a touched br-int did not yet hold the change (must be 0)")),
        f"detach_ms@{size}": fig(p(r["detach_realized_ms"], 50), "ms", note=(
            f"p50 of {n} (p95 {p(r['detach_realized_ms'], 95):.1f}): VM port unplugged until GET /v1/realized says "
            "the change is confirmed, the port's hypervisor read right after (realized_before_switches counts "
            "where it did not yet hold it); that change is the move hold's start: a port that leaves keeps its "
            f"place {hold:g} s in case it shows up elsewhere (its frames held, not dropped); watched on the "
            f"switch alone (a whole flow dump per look, every {r['detach_look_ms']:.0f} ms): "
            f"p50 {p(r['detach_ms'], 50):.0f} ms"),
            samples=r["detach_realized_ms"]),
        f"detach_after_hold_ms@{size}": fig(p(after_hold, 50), "ms", note=(
            f"p50 of {n}: the move hold ({hold:g} s) over, until every touched hypervisor is back as before "
            f"the attach (unplug to cleared: p50 {p(r['detach_cleared_ms'], 50):.0f} ms)")),
        f"cpu_cold_s@{size}": fig(r["cold_cpu_s"], "s", note="controller CPU from its start to programmed "
                                  f"(its database server: {r['db_cpu_s']:.1f} s more)"),
        f"cpu_per_attach_ms@{size}": _usable(fig(r["cpu_per_attach_ms"], "ms", "cpu_per_attach", (
            f"p50 of {len(cpu)} batches (each {', '.join(f'{x:.2f}' for x in cpu)}; spread "
            f"{max(cpu) - min(cpu):.2f}; the idle rate moved by +-{r['cpu_uncertainty_ms']:.1f} ms per attach "
            f"between the windows before and after a batch, p50): {r['cpu_batch']} attaches one after another "
            f"in one window of {'/'.join(str(w) for w in r['cpu_windows_s'])} s, less the controller's idle rate "
            "(windows "
            f"just before and after: {r['idle_cpu_pct']:.1f}% of a core); /proc/PID/stat, every thread; its "
            f"database server {r['db_cpu_per_attach_ms']:.2f} ms more"), samples=cpu), cpu, r["idle_cpu_pct"]),
        f"peak_memory_mb@{size}": fig(r["peak_mb"], "MB", note="controller's VmHWM"),
        f"flows_per_hv@{size}": fig(r["flows_per_hv_mean"], "flows", note=f"max {r['flows_per_hv_max']}"),
        f"flow_mods_per_attach@{size}": fig(r["flow_mods_per_attach"], "flow-mods", note=(
            f"sent by the controller for one attach (its /v1/hypervisors counters; {min(mods)}-{max(mods)} over "
            f"the {n} timed ones); flows added plus deleted on the switches, by cookie: "
            f"{r['flows_changed_per_attach']}, on {r['touched']} hypervisors")),
    }
