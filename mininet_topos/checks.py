"""Named checks run on a live lab (`packetwalk lab --test NAME[,NAME...]`).

A check takes the running Lab and returns a dict with "ok" plus its details; the CLI
prints them (or one JSON object with --json). Later issues add checks here.
"""
from __future__ import annotations

import itertools
import re

CHECKS = {}


def check(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


def ping(node, ip: str, count: int = 1, timeout: float = 1.0) -> int:
    """Echo replies `node` got from `ip`."""
    out = node.cmd(f"ping -n -c {count} -i 0.2 -W {timeout:g} {ip}")
    m = re.search(r"(\d+) received", out)
    return int(m.group(1)) if m else 0


def _hypervisor_sees_controller(node, timeout: float = 15.0) -> bool:
    """br-int's own view of its controller connection (ovs-vswitchd refreshes the
    Controller row's status every few seconds, so poll it)."""
    from mininet_topos.lab import LabError, wait_for
    try:
        return wait_for(lambda: node.ovs.vsctl("--columns=is_connected --bare list Controller").strip()
                        == "true", timeout, f"{node.name} to report its controller connection", 0.2)
    except LabError:
        return False


@check("underlay")
def underlay(lab) -> dict:
    """Every hypervisor connected to the controller (OpenFlow and OVSDB, as both sides
    see it), and every VTEP reaching every other across the underlay."""
    state = lab.controller_state().get("hypervisors", {})
    hypervisors = {}
    for hv in lab.topo.hypervisors:
        seen = state.get(hv.name, {})
        own = _hypervisor_sees_controller(lab.hv(hv.name))
        hypervisors[hv.name] = {
            "vtep_ip": str(hv.vtep_ip),
            "openflow": bool(seen.get("openflow")) and own,
            "ovsdb": bool(seen.get("ovsdb")),
            "vtep_as_controller_sees_it": seen.get("vtep_ip"),
        }
        hypervisors[hv.name]["ok"] = (hypervisors[hv.name]["openflow"] and hypervisors[hv.name]["ovsdb"]
                                      and seen.get("vtep_ip") == str(hv.vtep_ip))
    pairs = {}
    for a, b in itertools.permutations(lab.topo.hypervisors, 2):
        # one retry: the very first packet may wait on ARP for the remote VTEP
        pairs[f"{a.name}->{b.name}"] = ping(lab.hv(a.name), str(b.vtep_ip), count=2) > 0
    ok = all(h["ok"] for h in hypervisors.values()) and all(pairs.values())
    return {"ok": ok, "hypervisors": hypervisors, "vtep_reachability": pairs}


def run_checks(lab, names: list[str]) -> dict:
    results = {name: CHECKS[name](lab) for name in names}
    return {"ok": all(r["ok"] for r in results.values()), "topology": lab.topo.name, "checks": results}
