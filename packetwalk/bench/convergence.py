"""convergence: how soon a change works. From a port's creation to the first ping reply
from a VM on another hypervisor and another subnet (routed), p50 and p95; to "realized"
(the controller's confirmation that every hypervisor has it), once that signal exists;
and the pings lost while a VM moves between hypervisors, 10 ms apart."""
from __future__ import annotations

import re
import time

from mininet_topos import checks
from mininet_topos.lab import LabError, wait_for
from packetwalk.bench import figure, labs, not_measured
from packetwalk.show import request

REFERENCE = "reference OVN 23.03 lab"
OVN_ATTACH_MS = {(2, 2): 21, (8, 4): 43}


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile (p in 0..100) of `values`, None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))]


def _newer(lab, generation: int) -> int | None:
    now = request(lab.api, "GET", "/v1/realized")["generation"]
    return now if now > generation else None


def _routed_across(lab):
    """A VM and an observer on different hypervisors and different logical switches."""
    return checks.routed_pairs(lab).get("cross_host", (None, None))


def attach(lab, rounds: int, size: tuple[int, int], progress) -> dict:
    observer, vm = _routed_across(lab)
    progress(f"{size[0]}x{size[1]}: {rounds} attaches of {vm.name}'s port, {observer.name} pinging it every 2 ms")
    realized = []

    def timed(attach):
        """Around each attach: from its start until the controller confirms the change it
        made (GET /v1/realized: a generation newer than before, then realized up to it)."""
        before = request(lab.api, "GET", "/v1/realized")["generation"]
        t0 = attach()
        try:
            gen = wait_for(lambda: _newer(lab, before), 5, "the attach's generation", interval=0.002)
            wait_for(lambda: request(lab.api, "GET", "/v1/realized")["realized"] >= gen, 5,
                     "the attach to be realized", interval=0.002)
            realized.append(round((time.time() - t0) * 1000, 1))
        except LabError:
            realized.append(None)
        return t0
    latencies, mods = checks.attach_rounds(lab, vm, observer, rounds, wrap_attach=timed)
    got = [x for x in latencies if x is not None]
    done = [x for x in realized if x is not None]
    at, name, ref = {"hypervisors": size[0], "vms": size[0] * size[1]}, f"{size[0]}x{size[1]}", OVN_ATTACH_MS.get(size)
    base = {"baseline": ref, "baseline_of": REFERENCE if ref else None, "at": at}
    return {
        f"attach_to_first_reply_p50_ms@{name}": figure(percentile(got, 50), "ms", **base,
                                                       target=("<=", ref) if ref else None),
        f"attach_to_first_reply_p95_ms@{name}": figure(percentile(got, 95), "ms", **base,
                                                       note=f"{len(got)} of {rounds} attaches answered within 2 s",
                                                       samples=got),
        f"attach_to_realized_p50_ms@{name}": figure(percentile(done, 50), "ms", at=at, samples=done),
        f"attach_to_realized_p95_ms@{name}": figure(percentile(done, 95), "ms", at=at,
                                                    note=f"{len(done)} of {rounds} attaches realized within 5 s "
                                                         "(GET /v1/realized, polled every 2 ms)"),
        f"flow_mods_per_attach@{name}": figure(sum(sum(m.values()) for m in mods) / len(mods), "flow-mods", at=at,
                                               note="all hypervisors together, mean over the attaches"),
    }


def moves(lab, count: int, progress) -> dict:
    """`count` moves of one VM between two hypervisors (there and back) while a VM on a third
    place (or the other one) pings it every 10 ms."""
    vm, observer = checks._pair_across_hypervisors(lab)
    home = lab.placement[vm.name]
    away = next(h.name for h in lab.topo.hypervisors if h.name != home)
    progress(f"{count} moves of {vm.name} between {home} and {away}, {observer.name} pinging it every 10 ms")
    node = lab.vm(observer.name)
    node.sendCmd(f"ping -q -n -i 0.01 -W 1 {vm.ip}")      # -q: only the summary, at the end
    try:
        for i in range(count):
            lab.move_vm(vm.name, away if i % 2 == 0 else home)
        wait_for(lambda: checks.ping(lab.vm(vm.name), str(observer.ip)) == 1, 5,
                 f"{vm.name} to reach {observer.name} after the moves")
    finally:
        node.sendInt()
        out = node.waitOutput()
        if lab.placement[vm.name] != home:
            lab.move_vm(vm.name, home)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    sent, got = map(int, m.groups()) if m else (0, 0)
    return {"pings_lost_over_moves": figure(sent - got, "pings", target=("==", 0), at={"moves": count},
                                            note=f"{sent} pings sent over {count} moves, 10 ms apart "
                                                 "(a live migration: the port on the new br-int with the same iface-id, the VM switched over "
                                                 "once the controller made it, the old port removed; gratuitous ARP)"),
            "pings_lost_per_move": figure(round((sent - got) / count, 2), "pings")}


def run(quick: bool, progress) -> dict:
    figs = {}
    for size in ([(2, 2)] if quick else [(2, 2), (8, 4)]):
        try:
            with labs.lab(labs.grid(*size), progress) as lab:
                figs.update(attach(lab, 5 if quick else 20, size, progress))
                if size == (2, 2):
                    figs.update(moves(lab, 2 if quick else 20, progress))
        except LabError as e:
            figs.update(not_measured(f"attach_to_first_reply_p50_ms@{size[0]}x{size[1]}", "ms",
                                     {"hypervisors": size[0], "vms": size[0] * size[1]}, e))
    return figs
