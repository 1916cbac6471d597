"""The scale scenario with several controllers (`packetwalk bench scale-cluster`; the
controller-cluster issue's item 6): the same emulated hypervisors and network as the
`scale` scenario (packetwalk/bench_scale.py: its topology, its fleet, its cold-start
measure), under 1 and then 3 controllers that share a 3-member Raft database
(controller/cluster.py and membership.py: each hypervisor owned by one controller at a
time, by rendezvous hashing over the live ones; every hypervisor has every controller as an
OpenFlow target).

At each size and controller count, from a fresh fleet and database:
- spread: how many hypervisors each controller owns once ownership is as the rule says;
- cold: the intent put into the database first (through one controller, where no hypervisor
  reaches it); then, every hypervisor up and waiting, from the controllers' start until every
  hypervisor is owned as the rule says and holds its flows and tunnels (confirmed on its
  br-int, read over OpenFlow);
- failover: kill -9 the controller that owns the most hypervisors; until each of its
  hypervisors has a new owner that has read the switch and converged by difference (that
  owner's API counts all of the switch's flows as installed), the claim's own time as the
  database holds it, the flow-mods the new owners sent (target 0: nothing changed), flows
  changed on the switches (by cookie), and each switch's own word on who is master. With one
  controller there is nobody to fail over to: it is restarted (kill -9, start), the recovery
  a single controller offers.
The database members and the controllers run in the bench's namespace (the controllers on
addresses of the fleet's management bridge, the database on loopback); all are ours, by pid.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from controller import cluster
from controller.nbdb import DB_NAME, SCHEMA
from dataplane.fleet import Fleet
from dataplane.hypervisor import OPENFLOW_PORT, start_time, stop_all
from mininet_topos import cleanup
from mininet_topos.checks_cluster import TAKEOVER_TARGET
from mininet_topos.lab import LabError, wait_for
from mininet_topos.topology import intent_dict
from packetwalk import bench_scale
from packetwalk.bench import figure, not_measured, within_limit
from packetwalk.bench_scale import ScaleError
from packetwalk.show import ShowError, request

SIZES, QUICK = bench_scale.SIZES, bench_scale.QUICK
CONTROLLERS = (1, 3)
NB_MEMBERS = 3
NB_PORT, RAFT_PORT = 6700, 6710     # database member i: clients on 127.0.0.1:6700+i, Raft peers on 6710+i
API_PORT = 8200                     # controller i: its API on 127.0.0.1:8200+i (the scale bench has 8191)
RUNDIR = bench_scale.RUNDIR.parent / "scale-cluster"


class Node(bench_scale.Controller):
    """One controller of the cluster (the scale bench's Controller, started on the Raft
    database under a name of its own; no state file: at 200 hypervisors writing it would
    cost the controller more than what is measured)."""

    def __init__(self, rundir: Path, number: int, listen: str, nb_remote: str):
        self.rundir, self.name, self.listen = rundir, f"ctl{number}", listen
        self.api = f"http://127.0.0.1:{API_PORT + number}"
        d = rundir / self.name
        d.mkdir(parents=True, exist_ok=True)
        self.log = d / "controller.log"
        cmd = [sys.executable, "-m", "packetwalk.cli", "controller", "--nb", nb_remote, "--controller-name", self.name,
               "--ofp-listen-host", listen, "--ofp-tcp-listen-port", str(OPENFLOW_PORT),
               "--api-port", str(API_PORT + number)]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "EVENTLET_NO_GREENDNS": "yes"})
        self.pid = self.proc.pid
        self.started = [(self.pid, Path(sys.executable).name, start_time(self.pid))]
        cleanup.Manifest(rundir).add_pid(self.pid, Path(sys.executable).name)

    def call(self, method: str, path: str, body=None, timeout: float = 10.0):
        """Its API; a controller too busy to answer within `timeout` s is asked again later."""
        try:
            return request(self.api, method, "/v1" + path, body, timeout=timeout)
        except ShowError as e:
            raise ScaleError(f"{self.name}'s API: {method} {path}: {e}") from None

    def serving(self) -> bool:
        """Its OpenFlow port and its API both answer."""
        try:
            return self.listening() and self.call("GET", "/hypervisors") is not None
        except ScaleError:
            return False

    def kill(self) -> None:
        """kill -9: no chance to release its leases."""
        self.killed = True
        self.proc.kill()
        self.proc.wait()

    def flow_mods(self) -> dict[str, int]:
        """hypervisor -> flow-mods this process sent it, as its API says."""
        return {r["name"]: r["flow_mods"] for r in self.call("GET", "/hypervisors", timeout=60)}


class Database:
    """The controllers' database: a Raft cluster of `members` ovsdb-servers on loopback."""

    def __init__(self, rundir: Path, members: int = NB_MEMBERS):
        self.dirs = [rundir / f"nbdb{i}" for i in range(1, members + 1)]
        self.rundir, self.started = rundir, []
        self.remote = ",".join(f"tcp:127.0.0.1:{NB_PORT + i}" for i in range(1, members + 1))

    def start(self) -> None:
        for i, d in enumerate(self.dirs, start=1):
            d.mkdir(parents=True)
            me = f"tcp:127.0.0.1:{RAFT_PORT + i}"
            tool = ["create-cluster", f"{d}/nb.db", str(SCHEMA), me] if i == 1 else \
                ["join-cluster", f"{d}/nb.db", DB_NAME, me, f"tcp:127.0.0.1:{RAFT_PORT + 1}"]
            _run(["ovsdb-tool", *tool])
            _run(["ovsdb-server", f"{d}/nb.db", f"--remote=ptcp:{NB_PORT + i}:127.0.0.1", f"--pidfile={d}/ovsdb-server.pid",
                  f"--unixctl={d}/ovsdb-server.ctl", f"--log-file={d}/ovsdb-server.log", "--detach", "--no-chdir"])
            pid = int((d / "ovsdb-server.pid").read_text())
            self.started.append((pid, "ovsdb-server", start_time(pid)))
            cleanup.Manifest(self.rundir).add_pid(pid, "ovsdb-server")
        wait_for(self.leader, 20, "the database cluster to elect a leader")

    def leader(self) -> bool:
        return any("Role: leader" in subprocess.run(["ovs-appctl", "-t", f"{d}/ovsdb-server.ctl", "cluster/status",
                                                     DB_NAME], capture_output=True, text=True).stdout
                   for d in self.dirs)

    def claims(self) -> dict[str, tuple[str, float]]:
        """hypervisor -> (its owner, when it claimed it: s since the epoch), as the database holds it."""
        query = json.dumps([DB_NAME, {"op": "select", "table": "Hypervisor", "where": [],
                                      "columns": ["name", "controller", "claimed_at"]}])
        out = _run(["ovsdb-client", "query", f"tcp:127.0.0.1:{NB_PORT + 1}", query])
        return {r["name"]: (r["controller"], r["claimed_at"] / 1000) for r in json.loads(out)[0]["rows"]}

    def cpu_s(self, probe: Node) -> float:
        return sum(probe.cpu_s(pid) for pid, _, _ in self.started)

    def stop(self) -> None:
        stop_all(self.started, timeout=10)


def _run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if r.returncode:
        raise ScaleError(f"{' '.join(cmd[:2])}: {(r.stderr or r.stdout).strip()}")
    return r.stdout


class Cluster:
    """The live controllers, asked as one: what bench_scale's measures ask of its controller."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes
        self._next = 0.0          # (monotonic) the next look may start then

    def call(self, method: str, path: str, body=None):
        """GET /hypervisors: each hypervisor's row as its owner has it, only for those owned
        as the rule says for the live controllers (the rest are not taken up yet); anything
        else from the first live controller.

        Looks are paced: one starts no sooner than twice the last one's duration after it
        ended. A row costs the controller a walk over that hypervisor's flows: at 200
        hypervisors, asking as fast as it answers would make the bench its biggest load."""
        live = [n for n in self.nodes if n.proc.poll() is None]
        if (method, path) != ("GET", "/hypervisors"):
            return live[0].call(method, path, body)
        time.sleep(max(0.0, self._next - time.monotonic()))
        started = time.monotonic()
        try:
            return self._rows(live)
        finally:
            self._next = time.monotonic() + 2 * (time.monotonic() - started)

    def _rows(self, live: list[Node]) -> list[dict]:
        names, rows, answered = {n.name for n in live}, [], 0
        for n in live:
            try:
                got = n.call("GET", "/hypervisors")
            except ScaleError:            # busy programming: the next look asks again
                continue
            answered += 1
            rows += [r for r in got if r.get("controller") == n.name == cluster.rendezvous(r["name"], names)]
        if not answered:
            raise ScaleError("no controller's API answered")
        return rows

    def spread(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes if n.proc.poll() is None}
        for r in self.call("GET", "/hypervisors"):
            out[r["controller"]].append(r["name"])
        return out

    def alive(self):
        """ScaleError if a controller we did not kill has exited."""
        for n in self.nodes:
            if not getattr(n, "killed", False):
                n.alive()


# --- measuring ----------------------------------------------------------------------------

def measure(hypervisors: int, vms: int, controllers: int, progress, quiet: float = 1.0) -> dict:
    """One size under `controllers` controllers: fresh database and fleet, the cold start
    timed, one controller killed and the takeover timed; everything stopped."""
    topo, exp, members = bench_scale.prepare(hypervisors, vms, RUNDIR)
    size = f"scale {hypervisors}x{vms}, {controllers} controller{'s' if controllers > 1 else ''}"
    addresses = [str(topo.management.broadcast_address - 30 - i) for i in range(1, controllers + 1)]
    fleet = Fleet(RUNDIR, members, tuple(addresses), topo.management.prefixlen, progress)
    db, nodes = Database(RUNDIR), []
    try:
        progress(f"{size}: a {NB_MEMBERS}-member Raft database, the intent into it (one PUT)")
        db.start()
        nodes.append(Node(RUNDIR, 1, "127.0.0.1", db.remote))     # where no hypervisor reaches it
        wait_for(nodes[0].serving, 60, "the controller to serve its API")
        t0 = time.monotonic()
        nodes[0].call("PUT", "/intent", intent_dict(topo), timeout=120)
        intent_s = time.monotonic() - t0
        nodes.pop().stop()
        progress(f"{size}: starting {hypervisors} emulated hypervisors, each with {controllers} controller target{'s' if controllers > 1 else ''}")
        fleet.start()
        load = os.getloadavg()[0]
        progress(f"{size}: the controllers start; timing until every hypervisor is owned and holds its flows")
        t0 = time.monotonic()
        nodes += [Node(RUNDIR, i, ip, db.remote) for i, ip in enumerate(addresses, start=1)]
        group = Cluster(nodes)
        for n in nodes:
            wait_for(n.listening, 60, f"controller {n.name} to listen")
        cold = bench_scale._cold(group, fleet, exp, t0, 120 + 3 * hypervisors + 0.02 * vms)
        cold.update(cold_cpu_s=[n.cpu_s() for n in nodes], peak_mb=max(n.peak_mb() for n in nodes),
                    db_cpu_s=db.cpu_s(nodes[0]), spread={c: len(h) for c, h in group.spread().items()},
                    intent_s=intent_s, load=load)
        progress(f"{size}: programmed from cold in {cold['cold_s']:.1f} s; spread {cold['spread']}; "
                 "now kill -9 the busiest controller")
        out = {"hypervisors": hypervisors, "vms": vms, "controllers": controllers, **cold}
        try:
            out.update(_failover(group, db, fleet, RUNDIR, quiet, progress))
        except LabError as e:           # the cold figures stand; the failover's say why they are missing
            progress(f"{size}: the failover not measured: {e}")
            out["failover_error"] = str(e)
        out["load_after"] = os.getloadavg()[0]
        return out
    finally:
        stop_all([p for n in nodes for p in n.started], timeout=10)
        fleet.stop()
        db.stop()
        (RUNDIR / cleanup.MANIFEST).unlink(missing_ok=True)


def _failover(group: Cluster, db: Database, fleet: Fleet, rundir: Path, quiet: float, progress) -> dict:
    """kill -9 the controller owning the most hypervisors (one controller: kill -9 and start
    it again); timed until each of its hypervisors is owned by a live controller whose API
    counts all of the flows the switch holds as installed (read and converged by difference)."""
    spread = group.spread()
    victim = max(spread, key=lambda c: (len(spread[c]), c))
    theirs = sorted(spread[victim])
    held = fleet.observe(theirs)
    cookies = fleet.cookies(theirs)
    node = next(n for n in group.nodes if n.name == victim)
    mods = {n.name: n.flow_mods() for n in group.nodes if n is not node}
    killed_at, t0 = time.time(), time.monotonic()
    node.kill()
    if len(group.nodes) == 1:      # nobody to take over: the same controller, restarted
        group.nodes[0] = node = Node(rundir, int(victim.removeprefix("ctl")), node.listen, db.remote)
        mods = {victim: {}}
    seen: dict[str, float] = {}

    def taken():
        group.alive()
        rows = {r["name"]: r for r in _rows(group)}
        for hv in theirs:
            r = rows.get(hv)
            if hv not in seen and r and r["openflow"] and r["flows"] == held[hv][0]:
                seen[hv] = time.monotonic() - t0
        return len(seen) == len(theirs)
    limit = 60 + len(theirs)
    try:
        wait_for(taken, limit, "", interval=0.02)
        progress(f"{victim}'s {len(theirs)} hypervisors taken over in {max(seen.values()):.2f} s")
    except LabError:                # said in the figure's note; what was sent meanwhile still counts
        progress(f"only {len(seen)} of {victim}'s {len(theirs)} hypervisors taken over and converged in {limit} s")
    claims = db.claims()
    live = {n.name for n in group.nodes if not getattr(n, "killed", False)}
    owners = {hv: claims[hv][0] for hv in theirs}
    sent = _settled_flow_mods(group, mods, {hv: c for hv, c in owners.items() if c in live}, quiet)
    now = fleet.cookies(theirs)
    done = len(seen) == len(theirs)
    return {"victim": victim, "victim_hvs": len(theirs), "failover_s": max(seen.values()) if done else None,
            "failover_p50_s": statistics.median(seen.values()) if done else None, "converged": len(seen),
            "failover_limit_s": limit,
            "claimed_s": max(claims[hv][1] for hv in theirs) - killed_at
            if victim not in owners.values() and victim not in live else None,
            "takeover_flow_mods": sent, "flows_changed": sum(len(cookies[hv] ^ now[hv]) for hv in theirs),
            "masters": _masters(fleet, theirs, owners, {n.name: n.listen for n in group.nodes})}


def _rows(group: Cluster) -> list[dict]:
    try:
        return group.call("GET", "/hypervisors")
    except ScaleError:
        return []


def _settled_flow_mods(group: Cluster, before: dict, owners: dict[str, str], quiet: float) -> int:
    """The flow-mods the new owners sent their new hypervisors (their APIs' counts), once
    the counts have not moved for `quiet` s."""
    by_name = {n.name: n for n in group.nodes}

    def count():
        now = {c: by_name[c].flow_mods() for c in set(owners.values())}
        return sum(now[c].get(hv, 0) - before.get(c, {}).get(hv, 0) for hv, c in owners.items())
    last, since = count(), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.05)
        if (now := count()) != last:
            last, since = now, time.monotonic()
    return last


def _masters(fleet: Fleet, hypervisors: list[str], owners: dict[str, str], addresses: dict[str, str],
             timeout: float = 10.0) -> int:
    """How many of `hypervisors` say (their Controller rows, as ovs-vswitchd reports them) that
    exactly one controller is their connected master, and that it is their owner."""
    def agree(hv) -> bool:
        out = json.loads(fleet.vsctl(hv, "--format=json --columns=target,role,is_connected list controller"))
        masters = [target for target, role, up in out["data"] if role == "master" and up]
        return masters == [f"tcp:{addresses[owners[hv]]}:{OPENFLOW_PORT}"]
    deadline, pending = time.monotonic() + timeout, list(hypervisors)
    while pending and time.monotonic() < deadline:
        pending = [hv for hv in pending if not agree(hv)]
        if pending:
            time.sleep(0.2)
    return len(hypervisors) - len(pending)


# --- the scenario -------------------------------------------------------------------------

def run(quick: bool, progress) -> dict:
    """Every size (QUICK with quick) under 1 and 3 controllers; the figures in `packetwalk
    bench`'s shape."""
    sizes = QUICK if quick else within_limit(SIZES)
    out = {}
    for hypervisors, vms in sizes:
        for n in CONTROLLERS:
            try:
                r = measure(hypervisors, vms, n, progress, quiet=0.3 if quick else 1.0)
            except LabError as e:          # this size did not come up: said, and the next is tried
                progress(f"scale {hypervisors}x{vms}, {n} controllers: not measured: {e}")
                out.update(unmeasured(hypervisors, vms, n, e))
                continue
            out.update(figures(r, largest=(hypervisors, vms) == sizes[-1]))
    return out


def unmeasured(hypervisors: int, vms: int, controllers: int, why) -> dict:
    """Every figure of a size that did not come up, with no value; cold_s says why."""
    at, out = {"hypervisors": hypervisors, "vms": vms, "controllers": controllers}, {}
    for metric, unit in METRICS:
        out.update(not_measured(f"{metric}@{hypervisors}x{vms}/{controllers}ctl", unit, at,
                                why if metric == "cold_s" else "see cold_s"))
    return out


METRICS = (("busiest_controller_hvs", "hypervisors"), ("cold_s", "s"), ("cpu_cold_s", "s"), ("peak_memory_mb", "MB"),
           ("failover_s", "s"), ("takeover_flow_mods", "flow-mods"), ("new_master_on_switch", "hypervisors"))


def figures(r: dict, largest: bool) -> dict:
    n, h = r["controllers"], r["hypervisors"]
    key = f"{h}x{r['vms']}/{n}ctl"
    at = {"hypervisors": h, "vms": r["vms"], "controllers": n}
    single = n == 1
    spread = ", ".join(f"{c} {k}" for c, k in sorted(r["spread"].items()))
    cpu = " + ".join(f"{c:.1f}" for c in r["cold_cpu_s"])
    cold_target = ("<", bench_scale.TARGETS["cold"][1]) if largest and (h, r["vms"]) == SIZES[-1] else None
    failover = ("restart (no other controller): kill -9, start again, until it has read every switch and "
                "converged by difference" if single else
                f"kill -9 {r['victim']}: until each of its {r['victim_hvs']} hypervisors has a live owner that read "
                "it and converged by difference (seen through that owner's API)")
    if "failover_error" in r:
        failover = f"not measured: {r['failover_error']}"
        r = {**r, "victim_hvs": None, "failover_s": None, "claimed_s": None, "takeover_flow_mods": None,
             "flows_changed": None, "masters": None}
    elif r["failover_s"] is None:
        failover = (f"not converged: {r['converged']} of {r['victim_hvs']} hypervisors back to the flows they held "
                    f"within {r['failover_limit_s']:.0f} s; {failover}")
    else:
        failover += f"; p50 {r['failover_p50_s']:.2f} s"
    figs = {
        f"busiest_controller_hvs@{key}": figure(max(r["spread"].values()), "hypervisors", baseline=round(h / n, 1),
                                                baseline_of="even spread", at=at, note=f"owned: {spread}"),
        f"cold_s@{key}": figure(round(r["cold_s"], 2), "s", target=cold_target, at=at, note=(
            f"controllers' start until every hypervisor is owned as the rule says and holds its flows and tunnels "
            f"(load {r['load']:.1f}; the target is the scale scenario's at {SIZES[-1][0]} x {SIZES[-1][1]})")),
        f"cpu_cold_s@{key}": figure(round(sum(r["cold_cpu_s"]), 1), "s", at=at, note=(
            f"controllers' CPU from their start to programmed ({cpu}); the database's {NB_MEMBERS} members: "
            f"{r['db_cpu_s']:.1f} s")),
        f"peak_memory_mb@{key}": figure(round(r["peak_mb"]), "MB", at=at, note="the largest controller's VmHWM"),
        f"failover_s@{key}": figure(_round(r["failover_s"]), "s", target=("<", TAKEOVER_TARGET), at=at,
                                    note=failover + f" (load {r['load_after']:.1f})"),
        f"takeover_flow_mods@{key}": figure(r["takeover_flow_mods"], "flow-mods", target=("==", 0), at=at, note=(
            f"sent by the new owner{'' if single else 's'} to the {r['victim_hvs']} hypervisors taken over (their "
            f"APIs' counts); flows changed on those switches, by cookie: {r['flows_changed']}")),
        f"new_master_on_switch@{key}": figure(r["masters"], "hypervisors", target=("==", r["victim_hvs"] or 0), at=at,
                                              note="hypervisors taken over whose ovs-vswitchd reports exactly one "
                                                   "connected master controller, their new owner"),
    }
    if not single:
        figs[f"failover_claimed_s@{key}"] = figure(
            _round(r["claimed_s"]), "s", target=("<", TAKEOVER_TARGET), at=at,
            note="the kill until the last of its hypervisors was claimed, as the database holds it (leases "
                 "last 1.2 s, written longer when the controllers' rounds are slow)")
    return figs


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)
