"""Checks under stress: `packet-in-storm` (a VM floods the control plane) and `vm-move`
(a VM moves between hypervisors again and again while another pings it every 10 ms)."""
from __future__ import annotations

import ipaddress
import threading
import time
import urllib.request

from mininet_topos.checks import check, expected_reachable
from mininet_topos.trust_checks import craft, roles

STORM_SECONDS = 5.0
API_EVERY = 0.02          # s between the API poller's requests
MOVES = 20


def _free(topo, switch: str, n: int) -> list[str]:
    """`n` host addresses of `switch` that no VM, LIF or binding holds: unknown hosts."""
    sw = topo.switch(switch)
    taken = {str(v.ip) for v in topo.vms} | {str(i.ip) for r in topo.routers for i in r.interfaces} \
        | {str(b.ip) for b in topo.static_bindings}
    return [str(ip) for ip in list(sw.subnet.hosts())[::-1] if str(ip) not in taken][:n]


class ApiPoller(threading.Thread):
    """GET one API path every API_EVERY s until stopped; the latency of each answer."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.ms, self.errors = url, [], 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    r.read()
                self.ms.append((time.monotonic() - t0) * 1000)
            except OSError:
                self.errors += 1
            self.done.wait(API_EVERY)

    def figures(self) -> dict:
        ms = sorted(self.ms)
        pick = (lambda q: round(ms[min(len(ms) - 1, int(q * len(ms)))], 1)) if ms else (lambda q: None)
        return {"requests": len(ms), "errors": self.errors, "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                "max_ms": round(ms[-1], 1) if ms else None}


def _observers(lab, attacker) -> list[tuple]:
    """Pairs of other VMs that must reach each other: one on a switch, one routed, if there are."""
    found = {}
    for a in lab.topo.vms:
        for b in lab.topo.vms:
            if attacker in (a, b) or a is b or not expected_reachable(lab.topo, a, b):
                continue
            found.setdefault(a.switch == b.switch, (a, b))
    return list(found.values())


def _storm(lab, kind: str, attacker, targets: list[str], observers) -> dict:
    from mininet_topos.checks_intent import Pinger
    log = lab.rundir / "controller" / "controller.log"
    size0 = log.stat().st_size
    pingers = [Pinger(lab, a.name, str(b.ip), f"storm-{kind}-{a.name}-{b.name}") for a, b in observers]
    for p, (a, b) in zip(pingers, observers):
        p.wait_replies(3)
    poller = ApiPoller(f"{lab.api}/v1/hypervisors")
    poller.start()
    t0 = time.monotonic()
    spec = {"eth_src": attacker.mac, "ip_src": str(attacker.ip), "vmac": lab.topo.vmac, "targets": targets}
    sent = int(craft(lab, attacker.name, "storm", kind, str(STORM_SECONDS), spec).split()[-1])
    took = time.monotonic() - t0
    poller.done.set()
    poller.join()
    lost = {f"{a.name}->{b.name}": p.stop() for p, (a, b) in zip(pingers, observers)}
    grown = log.stat().st_size - size0
    return {"frames_sent": sent, "frames_per_s": round(sent / took), "seconds": round(took, 1),
            "api": poller.figures(), "other_vms_pings": lost,
            "other_vms_pings_lost": sum(v["pings_lost"] for v in lost.values()),
            "log_growth_bytes": grown, "log_growth_kb_per_min": round(grown / 1024 / took * 60, 1)}


@check("packet-in-storm")
def packet_in_storm(lab) -> dict:
    """A VM floods what would reach the controller: routed UDP to unknown hosts (each a next
    hop to resolve), then broadcast ARP for unknown addresses, each for STORM_SECONDS. Meanwhile
    the API is asked every 20 ms and other VMs ping each other every 10 ms. Targets: API p99
    under 100 ms, other VMs lose 0 pings, the controller's log grows under 100 KB a minute."""
    attacker, peer, far = roles(lab)
    if attacker is None:
        return {"ok": True, "skipped": "no VM with a same-switch peer and a routed one"}
    observers = _observers(lab, attacker)
    storms = {"routed-to-unknown-hosts": _storm(lab, "routed", attacker, _free(lab.topo, far.switch, 200), observers),
              "arp-for-unknown-hosts": _storm(lab, "arp", attacker, _free(lab.topo, attacker.switch, 200), observers)}
    refused = lab.controller_state().get("packet_ins_refused")
    ok = all(s["api"]["p99_ms"] is not None and s["api"]["p99_ms"] < 100 and s["api"]["errors"] == 0
             and s["other_vms_pings_lost"] == 0 and s["log_growth_kb_per_min"] < 100 for s in storms.values())
    return {"ok": ok, "attacker": attacker.name, "observers": [f"{a.name}->{b.name}" for a, b in observers],
            **storms, "controller_packet_ins_refused": refused}


@check("vm-move")
def vm_move(lab) -> dict:
    """vMotion, MOVES times: a VM moves to another hypervisor and back (same MAC and IP) as a
    hypervisor does it (mininet_topos/migration.py) while a VM on a third place (or the other
    hypervisor) pings it every 10 ms; pings lost in all (and duplicated: while it is attached in
    both places, both get its frames)."""
    from mininet_topos.checks import _pair_across_hypervisors
    from mininet_topos.checks_intent import Pinger
    vm, observer = _pair_across_hypervisors(lab)
    if vm is None:
        return {"ok": True, "skipped": "no two VMs of one switch on different hypervisors"}
    home = lab.placement[vm.name]
    away = next(h.name for h in lab.topo.hypervisors if h.name != home)
    pinger = Pinger(lab, observer.name, str(vm.ip), f"move-{vm.name}")
    pinger.wait_replies(3)
    took = []
    try:
        for i in range(MOVES):
            t0 = time.monotonic()
            lab.move_vm(vm.name, away if i % 2 == 0 else home)
            took.append((time.monotonic() - t0) * 1000)
            pinger.wait_replies(5)          # reachable at its new place before it moves again
    finally:
        if lab.placement[vm.name] != home:
            lab.move_vm(vm.name, home)
        result = pinger.stop()
    return {"ok": result["pings_lost"] == 0, "vm": vm.name, "observer": observer.name, "moves": MOVES,
            "between": [home, away], "ping_interval_ms": 10, **result,
            "move_ms": {"p50": round(sorted(took)[len(took) // 2]), "max": round(max(took))}}
