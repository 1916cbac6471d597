"""`--test hypervisor-restart`: a hypervisor's daemons die and come back.

Its ovs-vswitchd is hung (SIGSTOP, then SIGCONT: only OpenFlow echoes tell), then killed,
then its ovsdb-server (SIGKILL, by the pid in their pidfiles), and each started again, while two VMs on other hypervisors ping each other every
10 ms. Figures: seconds until the controller says the hypervisor is down (target: 3),
whether its VTEP left the others' flood lists meanwhile, seconds from the restart to its
VM answering a ping from another hypervisor, and pings lost between the others (target 0).
"""
from __future__ import annotations

import itertools
import json
import os
import re
import signal
import time
import urllib.request

from mininet_topos.checks import check, expected_reachable, ping

NOTICE_TARGET = 3.0      # s


def _choose(lab):
    """A hypervisor with a VM (the victim), a VM elsewhere that reaches it (the observer),
    and two more VMs on two other hypervisors that reach each other (the pair)."""
    topo = lab.topo
    for hv in topo.hypervisors:
        others = [v for v in topo.vms if lab.placement[v.name] != hv.name]
        for victim in lab.vms_on(hv.name):
            for a, b in itertools.permutations(others, 2):
                if lab.placement[a.name] == lab.placement[b.name] or not expected_reachable(topo, a, b):
                    continue
                observer = next((o for o in others if o not in (a, b) and expected_reachable(topo, o, victim)), None)
                if observer:
                    return hv.name, victim, observer, (a, b)
    return None


def _state(lab, hv: str) -> dict:
    return lab.controller_state().get("hypervisors", {}).get(hv, {})


def _floods_to(lab, hv: str) -> list[str]:
    """Hypervisors whose flood flows (as the controller has them installed) still replicate
    to `hv`'s VTEP."""
    found = []
    for other in lab.topo.hypervisors:
        if other.name == hv:
            continue
        with urllib.request.urlopen(f"{lab.api}/v1/hypervisors/{other.name}/tunnels", timeout=5) as r:
            ports = [t["ofport"] for t in json.load(r) if t["remote"] == hv and t["ofport"]]
        with urllib.request.urlopen(f"{lab.api}/v1/hypervisors/{other.name}/flows", timeout=5) as r:
            flows = [f["ofctl"] for f in json.load(r)["flows"] if f["table"] == "FLOOD"]
        if any(re.search(rf"output:{p}\b", f) for p in ports for f in flows):
            found.append(other.name)
    return found


def _restart(ovs, daemon: str) -> None:
    d = ovs.rundir
    if daemon == "ovs-vswitchd":
        from dataplane.hypervisor import VTEP_ROUTING
        ovs.sh(f"ovs-vswitchd {VTEP_ROUTING} --pidfile --log-file --detach --no-chdir")
        # br-phy's internal port (the VTEP) is made again by ovs-vswitchd: its address (and
        # OVS's route to the underlay) is the host's network configuration, put back as the
        # host's boot would
        from mininet_topos.lab import wait_for
        wait_for(lambda: "br-phy" in ovs.run("ls /sys/class/net"), 10, f"{ovs.name}'s br-phy")
        ovs.sh(ovs.vtep_script())
    else:
        from dataplane.hypervisor import OVSDB_PORT
        ovs.sh(f"ovsdb-server {d}/conf.db --remote=punix:{d}/db.sock --remote=ptcp:{OVSDB_PORT}:{ovs.mgmt_ip} "
               f"--pidfile --log-file --detach --no-chdir")


def _kill_and_restart(lab, hv: str, daemon: str, victim, observer, hang: bool = False) -> dict:
    """SIGKILL and start again; with hang, SIGSTOP and SIGCONT (a daemon that stops
    answering without closing its connections: only echoes and probes tell)."""
    from mininet_topos.lab import LabError, wait_for
    ovs = lab.hv(hv).ovs
    pid = ovs.pids()[daemon]
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP if hang else signal.SIGKILL)
    out = {}
    try:
        wait_for(lambda: _state(lab, hv).get("up") is False, 15, f"the controller to mark {hv} down")
        out["seconds_to_notice"] = round(time.monotonic() - t0, 2)
        out["still_flooded_to_by"] = _floods_to(lab, hv)
    except LabError:
        out["seconds_to_notice"] = None
    t1 = time.monotonic()
    if hang:
        os.kill(pid, signal.SIGCONT)
    else:
        _restart(ovs, daemon)
    try:
        wait_for(lambda: ping(lab.vm(observer.name), str(victim.ip), timeout=0.2) == 1, 30,
                 f"{victim.name} to answer again", interval=0)
        out["seconds_to_answer"] = round(time.monotonic() - t1, 2)
        wait_for(lambda: _state(lab, hv).get("up"), 15, f"the controller to mark {hv} up")
    except LabError:
        out["seconds_to_answer"] = None
    out["ok"] = (out["seconds_to_notice"] is not None and out["seconds_to_notice"] <= NOTICE_TARGET
                 and out.get("still_flooded_to_by") == [] and out["seconds_to_answer"] is not None)
    return out


@check("hypervisor-restart")
def hypervisor_restart(lab) -> dict:
    chosen = _choose(lab)
    if chosen is None:
        return {"ok": True, "skipped": "needs a VM on one hypervisor and two VMs on two others"}
    hv, victim, observer, (a, b) = chosen
    pinger = lab.vm(a.name)
    pinger.sendCmd(f"ping -n -i 0.01 -W 1 {b.ip}")
    results = {}
    try:
        results["ovs-vswitchd hung"] = _kill_and_restart(lab, hv, "ovs-vswitchd", victim, observer, hang=True)
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            results[daemon] = _kill_and_restart(lab, hv, daemon, victim, observer)
    finally:
        pinger.sendInt()
        out = pinger.waitOutput()
    summary = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    sent, got = map(int, summary.groups()) if summary else (0, 0)
    lost = sent - got
    return {"ok": all(r["ok"] for r in results.values()) and sent > 0 and lost == 0,
            "hypervisor": hv, "victim": victim.name, "observer": observer.name,
            "elsewhere": f"{a.name} -> {b.name}", "notice_target_s": NOTICE_TARGET, **results,
            "pings_sent_elsewhere": sent, "pings_lost_elsewhere": lost}
