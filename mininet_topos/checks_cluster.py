"""Checks of several controllers on one database (`packetwalk lab --controllers 3 --nb-cluster 3`).

controller-failover  kill -9 the controller that owns a hypervisor, and the database's Raft
                     leader at the same moment, while VMs ping across hypervisors every
                     10 ms: its hypervisors are taken over within 3 s, no ping is lost, and
                     a VM attached during the failover converges
controller-join      a controller joins and takes its share (by the same rule) without a
                     lost ping, and the handover sends no flow-mod when nothing changed
"""
from __future__ import annotations

import itertools
import time

from controller import cluster
from mininet_topos.checks import check
from mininet_topos.checks_intent import Pinger, _api, _new_mac

TAKEOVER_TARGET = 3.0    # s


def _owners(lab) -> dict[str, str | None]:
    return {h["name"]: h.get("controller") for h in _api(lab, "GET", "/v1/hypervisors")}


def _settled(lab) -> dict[str, str]:
    """Ownership as the rule gives it for the live controllers (a restarted one has its share back)."""
    from mininet_topos.lab import wait_for
    live = {c for c in lab.controllers if lab.controller_alive(c)}
    return wait_for(lambda: (o := _owners(lab)) and all(o[hv] == cluster.rendezvous(hv, live) for hv in o) and o,
                    20, "every hypervisor owned as the rule says")


def _cross_pingers(lab, tag: str) -> list[Pinger]:
    """Every VM pings one VM it can reach on another hypervisor, every 10 ms."""
    from mininet_topos.checks import expected_reachable
    pingers = []
    for a in lab.topo.vms:
        b = next((b for b in lab.topo.vms if lab.placement[b.name] != lab.placement[a.name]
                  and expected_reachable(lab.topo, a, b)), None)
        if b is not None:
            pingers.append(Pinger(lab, a.name, str(b.ip), f"{tag}-{a.name}"))
    return pingers


def _stop(pingers) -> dict:
    results = [p.stop() for p in pingers]
    return {"pings_sent": sum(r["pings_sent"] for r in results), "pings_lost": sum(r["pings_lost"] for r in results)}


@check("controller-failover")
def controller_failover(lab) -> dict:
    from mininet_topos.lab import wait_for
    if len(lab.controllers) < 2:
        return {"ok": False, "error": "needs several controllers: packetwalk lab --controllers 3"}
    owners = _settled(lab)
    victim = owners[lab.topo.hypervisors[0].name]
    theirs = sorted(hv for hv, c in owners.items() if c == victim)
    pingers = _cross_pingers(lab, "failover")
    for p in pingers:
        p.wait_replies(20)
    leader = lab.nb.leader() if lab.nb else None
    t0, killed_at = time.monotonic(), time.time()
    lab.kill_controller(victim)
    if leader:
        from dataplane.hypervisor import stop_pid
        stop_pid(lab.nb.pid(leader), "ovsdb-server", timeout=0.5)
    lab.api = lab.controller_api(next(c for c in lab.controllers if c != victim and lab.controller_alive(c)))
    # a VM attached during the failover, on a hypervisor the dead controller owned
    sw = lab.topo.switch(lab.topo.vms[0].switch)
    ip = str(list(sw.subnet.hosts())[-5])
    attached_at = None
    port = {"name": "newvm", "switch": sw.name, "mac": _new_mac(9), "ips": [ip]}
    try:
        # a write that timed out may still have been made: then it is there, not to be made again
        wait_for(lambda: _try(lambda: _api(lab, "POST", "/v1/logical-ports", port))
                 or _try(lambda: _api(lab, "GET", "/v1/logical-ports/newvm")), 20,
                 "the API of a surviving controller to take a new port")
        lab.add_vm("newvm", theirs[0], ip, _new_mac(9), sw.subnet.prefixlen, str(lab.topo.gateway(lab.topo.vms[0]) or ""))
        attached_at = time.monotonic()
        taken = wait_for(lambda: (o := _owners(lab)) and all(o.get(hv) not in (None, victim) for hv in theirs) and o,
                         20, f"{victim}'s hypervisors to be taken over")
        seen = time.monotonic() - t0
        takeover = max(_claimed_at(lab, hv, leader) for hv in theirs) - killed_at
        observer = next(vm for vm in lab.topo.vms if vm.switch == sw.name)
        from mininet_topos.checks import ping
        wait_for(lambda: ping(lab.vm(observer.name), ip, timeout=0.3) == 1, 20, "the VM attached during the failover")
        converged = time.monotonic() - attached_at
        for p in pingers:
            p.wait_replies(50)
    finally:
        pinged = _stop(pingers)
    lab.start_controller(victim)
    if leader:
        lab.nb.start_member(leader, lab.manifest)
    _api(lab, "DELETE", "/v1/logical-ports/newvm")
    return {"ok": takeover < TAKEOVER_TARGET and pinged["pings_lost"] == 0 and pinged["pings_sent"] > 0,
            "killed_controller": victim, "its_hypervisors": theirs, "new_owners": {hv: taken[hv] for hv in theirs},
            "killed_database_leader": lab.nb.member(leader) if leader else None,
            "takeover_s": round(takeover, 2), "target_s": TAKEOVER_TARGET, "seen_through_the_api_s": round(seen, 2),
            "vm_attached_during_failover_answered_after_s": round(converged, 2), **pinged}


def _claimed_at(lab, hv: str, dead_member: int | None) -> float:
    """When the hypervisor's current owner claimed it, as the database holds it (read from a
    live member directly, not through a controller)."""
    member = next(i for i in range(1, lab.nb_cluster + 1) if i != dead_member)
    rows = lab.nb.select(member, "Hypervisor", ["claimed_at"], [["name", "==", hv]])
    return rows[0]["claimed_at"] / 1000


def _try(fn):
    try:
        return fn() or True
    except Exception:
        return None


@check("controller-join")
def controller_join(lab) -> dict:
    """A new controller whose name the rule gives at least one hypervisor joins; it takes
    exactly those (the others keep theirs), no ping is lost, and taking over sends nothing
    (what the hypervisor holds is already right)."""
    from mininet_topos.lab import wait_for
    if not lab.controllers:
        return {"ok": False, "error": "needs --controllers"}
    before = _settled(lab)
    live = set(lab.controllers)
    name = next(n for n in (f"ctl{i}" for i in itertools.count(len(lab.controllers) + 1))
                if n not in live and any(cluster.rendezvous(hv, live | {n}) == n for hv in before))
    share = sorted(hv for hv in before if cluster.rendezvous(hv, live | {name}) == name)
    pingers = _cross_pingers(lab, "join")
    for p in pingers:
        p.wait_replies(20)
    mods_before = _flow_mods(lab)
    t0 = time.monotonic()
    lab.add_controller(name)
    try:
        after = wait_for(lambda: (o := _owners(lab)) and all(o.get(hv) == name for hv in share) and o, 20,
                         f"{name} to take {', '.join(share)}")
        took = time.monotonic() - t0
        for p in pingers:
            p.wait_replies(50)
    finally:
        pinged = _stop(pingers)
    mods = {hv: _flow_mods(lab, name).get(hv, 0) for hv in share}
    kept = all(after[hv] == before[hv] for hv in before if hv not in share)
    return {"ok": kept and pinged["pings_lost"] == 0 and sum(mods.values()) == 0,
            "joined": name, "took": share, "others_kept_theirs": kept, "took_over_in_s": round(took, 2),
            "flow_mods_sent_by_it": mods, "flow_mods_before": mods_before, **pinged}


def _flow_mods(lab, controller: str | None = None) -> dict[str, int]:
    state = lab.controller_state(controller)
    return {n: h.get("flow_mods", 0) for n, h in state.get("hypervisors", {}).items()}
