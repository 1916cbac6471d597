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


def expected_reachable(topo, a, b) -> bool:
    """What the topology implies: same logical switch, or two switches of one router."""
    if a.switch == b.switch:
        return True
    return any({a.switch, b.switch} <= {i.switch for i in r.interfaces} for r in topo.routers)


def _holder(topo, switch: str, ip) -> str | None:
    """Who a VM on `switch` reaches at `ip`: the holder on its own switch if `ip` is in its
    subnet, else the holder on the switch its router has for that subnet."""
    if ip not in topo.switch(switch).subnet:
        router = next((r for r in topo.routers if switch in {i.switch for i in r.interfaces}), None)
        switch = next((i.switch for i in router.interfaces if ip in topo.switch(i.switch).subnet),
                      None) if router else None
    return next((vm.name for vm in topo.vms if vm.switch == switch and vm.ip == ip), None)


def ping_pairs(lab, pairs) -> dict[tuple[str, str], bool]:
    """Ping (src, dst) pairs, one packet each, all sources at once, each source's targets in
    parallel. Returns {(src, dst): got a reply}."""
    by_src = {}
    for src, dst in pairs:
        by_src.setdefault(src, []).append(dst)
    for src, dsts in by_src.items():
        ips = " ".join(str(lab.topo.vm(d).ip) for d in dsts)
        lab.vm(src).sendCmd(f"( for ip in {ips}; do ( ping -n -c1 -W1 $ip >/dev/null 2>&1 "
                            f"&& echo \"$ip 1\" || echo \"$ip 0\" ) & done; wait )")
    result = {}
    for src, dsts in by_src.items():
        got = dict(line.split() for line in lab.vm(src).waitOutput().splitlines() if line.count(" ") == 1)
        for d in dsts:
            result[(src, d)] = got.get(str(lab.topo.vm(d).ip)) == "1"
    return result


@check("pingall")
def pingall(lab) -> dict:
    """The reachability matrix the topology implies, one ping per pair, first try: pairs
    that must reach (and reach the right VM: checked by the MAC the source resolved)
    and pairs that must NOT (different logical switches with no router between them)."""
    topo = lab.topo
    pairs, skipped = [], []
    for a, b in itertools.permutations(topo.vms, 2):
        if _holder(topo, a.switch, b.ip) not in (None, b.name):
            skipped.append(f"{a.name}->{b.name}")   # b's IP is someone else's on a's switch
        else:
            pairs.append((a.name, b.name))
    reached = ping_pairs(lab, pairs)
    rows, wrong = {}, []
    for (a, b), got in reached.items():
        want = expected_reachable(topo, topo.vm(a), topo.vm(b))
        verdict = ("ok" if got else "unreachable") if want else ("LEAK" if got else "isolated")
        if got and topo.vm(a).switch == topo.vm(b).switch:
            seen = lab.vm(a).cmd(f"ip -4 neigh show {topo.vm(b).ip}").split()
            if topo.vm(b).mac not in seen:
                verdict = "WRONG VM"
        rows.setdefault(a, {})[b] = verdict
        if verdict not in ("ok", "isolated"):
            wrong.append(f"{a}->{b}: {verdict}")
    return {"ok": not wrong, "pairs": len(reached), "must_reach": sum(v == "ok" for r in rows.values() for v in r.values()),
            "isolated": sum(v == "isolated" for r in rows.values() for v in r.values()),
            "failures": wrong, "matrix": rows, "skipped_same_ip": skipped}


@check("arp-suppression")
def arp_suppression(lab) -> dict:
    """Flush every VM's ARP cache, ping every pair that must reach, and count ARP frames on
    the underlay, bare and inside VXLAN: known bindings are answered at the hypervisor, so
    0. A control ARP for an unbound IP must be seen (flooded), proving the capture counts."""
    from mininet_topos.capture import Capture, vm_arp
    topo = lab.topo
    for vm in topo.vms:
        lab.vm(vm.name).cmd("ip neigh flush all")
    pairs = [(a.name, b.name) for a, b in itertools.permutations(topo.vms, 2)
             if expected_reachable(topo, a, b) and _holder(topo, a.switch, b.ip) in (None, b.name)]
    with Capture(vm_arp(topo.kind)) as known:
        reached = ping_pairs(lab, pairs)
    control = _control_arp(lab)
    ok = known.count == 0 and all(reached.values()) and control.get("frames", 1) > 0
    return {"ok": ok, "pings": len(reached), "replies": sum(reached.values()),
            "underlay_arp_frames": known.count, "frames": known.lines[:20], "control": control}


def _control_arp(lab) -> dict:
    """An ARP for an IP nobody holds, on a switch that spans two hypervisors: it must be
    flooded (head-end replication), so the capture must see it inside VXLAN."""
    from mininet_topos.capture import Capture, vm_arp
    topo = lab.topo
    for sw in topo.switches:
        vms = [vm for vm in topo.vms if vm.switch == sw.name]
        if len({vm.hypervisor for vm in vms}) < 2:
            continue
        taken = {vm.ip for vm in topo.vms if vm.switch == sw.name} | {
            b.ip for b in topo.static_bindings if b.switch == sw.name} | {
            i.ip for r in topo.routers for i in r.interfaces if i.switch == sw.name}
        free = next(ip for ip in sw.subnet.hosts() if ip not in taken)
        with Capture(vm_arp(topo.kind)) as cap:
            lab.vm(vms[0].name).cmd(f"arping -q -c 1 -w 1 -I eth0 {free}")
        return {"from": vms[0].name, "unbound_ip": str(free), "frames": cap.count}
    return {"skipped": "no logical switch spans two hypervisors"}


def _flow_mods(lab) -> dict[str, int]:
    """Flow-mods sent per hypervisor, once everything the controller took in is confirmed."""
    from mininet_topos.lab import wait_for

    def settled():
        state = lab.controller_state()
        r = state.get("realized", {})
        return state if r and r["realized"] >= r["generation"] else None
    state = wait_for(settled, 10, "the controller's changes to be confirmed")
    return {n: h["flow_mods"] for n, h in state.get("hypervisors", {}).items()}


def _pair_across_hypervisors(lab):
    """A VM and an observer on the same logical switch, on different hypervisors."""
    for a, b in itertools.permutations(lab.topo.vms, 2):
        if a.switch == b.switch and lab.placement[a.name] != lab.placement[b.name]:
            return a, b
    return None, None


@check("attach")
def attach(lab, rounds: int = 10) -> dict:
    """Incremental programming, measured: detach and re-attach a VM's port `rounds` times;
    count the flow-mods each attach sends (per hypervisor) and time from the port's
    attachment to the first ping reply from a VM on another hypervisor (2 ms ping interval).
    The figures are reported; ok means every attach was reachable again."""
    vm, observer = _pair_across_hypervisors(lab)
    if vm is None:
        return {"ok": True, "skipped": "no two VMs of one switch on different hypervisors"}
    latencies, mods = attach_rounds(lab, vm, observer, rounds)
    got = sorted(x for x in latencies if x is not None)
    return {"ok": len(got) == rounds, "vm": vm.name, "observer": observer.name, "rounds": rounds,
            "attach_to_first_reply_ms": {"p50": got[len(got) // 2] if got else None,
                                         "max": got[-1] if got else None, "all": latencies},
            "flow_mods_per_attach": mods}


def attach_rounds(lab, vm, observer, rounds: int, wrap_attach=None) -> tuple[list, list]:
    """Detach and re-attach `vm`'s port `rounds` times while `observer` pings it every 2 ms
    until the first reply. `wrap_attach(attach)`, if given, runs each attach (attach() returns
    the time it began) and returns what attach() did: a measurement may go around it.
    Returns (ms from each attachment to the first reply, or None; flow-mods each attach
    sent per hypervisor)."""
    from mininet_topos.lab import wait_for
    hv = lab.hv(lab.placement[vm.name]).ovs
    sw = lab.topo.switch(vm.switch)
    attached = lambda: vm.name in lab.controller_state()["hypervisors"][hv.name]["attachments"]
    latencies, mods = [], []
    for _ in range(rounds):
        hv.detach_vm(vm.name)
        wait_for(lambda: not attached(), 10, f"{vm.name} to be detached")
        before = _flow_mods(lab)
        lab.vm(observer.name).sendCmd(f"ping -D -n -c 1 -i 0.002 -W 0.1 -w 2 {vm.ip}")
        attach_now = lambda: _attach_now(hv, vm, sw)
        t0 = wrap_attach(attach_now) if wrap_attach else attach_now()
        out = lab.vm(observer.name).waitOutput()
        replies = [float(m) for m in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", out, re.M)]
        after = [t for t in replies if t >= t0]
        latencies.append(round((after[0] - t0) * 1000, 1) if after else None)
        wait_for(attached, 10, f"{vm.name} to be attached")
        now = _flow_mods(lab)
        mods.append({h: now[h] - before.get(h, 0) for h in now if now[h] != before.get(h, 0)})
    return latencies, mods


def _attach_now(hv, vm, sw) -> float:
    """Create the VM's port; the time the creation began (a reply can come before
    ovs-vsctl returns, which waits for ovs-vswitchd)."""
    import time
    t0 = time.time()
    hv.attach_vm(vm.name, vm.name, vm.mac, sw.name, sw.vni)
    return t0


@check("mobility")
def mobility(lab) -> dict:
    """vMotion: move a VM to another hypervisor (same MAC and IP) while another VM pings it
    every 10 ms; report the pings lost, then move it back."""
    vm, observer = _pair_across_hypervisors(lab)
    if vm is None:
        return {"ok": True, "skipped": "no two VMs of one switch on different hypervisors"}
    home = lab.placement[vm.name]
    others = [h.name for h in lab.topo.hypervisors if h.name != home]
    away = next((h for h in others if h != lab.placement[observer.name]), others[0])
    lab.vm(observer.name).sendCmd(f"ping -n -i 0.01 -c 300 -W 1 {vm.ip}")
    try:
        lab.move_vm(vm.name, away)
        out = lab.vm(observer.name).waitOutput()
        after = ping(lab.vm(observer.name), str(vm.ip))
    finally:
        lab.move_vm(vm.name, home)
    summary = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    sent, got = map(int, summary.groups()) if summary else (0, 0)
    return {"ok": got > 0 and after == 1, "vm": vm.name, "from": home, "to": away,
            "observer": observer.name, "pings_sent": sent, "pings_lost": sent - got,
            "ms_lost_at_10ms_interval": (sent - got) * 10}


def routed_pairs(lab) -> dict[str, tuple]:
    """For each kind of routed path the topology has, one (src, dst) pair: on one host,
    and across hosts."""
    topo, found = lab.topo, {}
    for a, b in itertools.permutations(topo.vms, 2):
        if a.switch == b.switch or not expected_reachable(topo, a, b):
            continue
        kind = "same_host" if lab.placement[a.name] == lab.placement[b.name] else "cross_host"
        found.setdefault(kind, (a, b))
    return found


def _routed_ping(lab, a, b) -> dict:
    from mininet_topos.capture import Capture, vm_icmp
    with Capture(vm_icmp(lab.topo.kind)) as underlay, Capture("icmp", interface="eth0", netns=f"pw-{b.name}") as rx:
        replies = ping(lab.vm(a.name), str(b.ip))
    ttls = [int(t) for t in re.findall(r"\bttl (\d+)", rx.text)]
    hops = re.findall(r"^\s*\d+\s+([\d.]+|\*)", lab.vm(a.name).cmd(f"traceroute -n -q1 -w1 -m 5 {b.ip}"), re.M)
    return {"src": a.name, "dst": b.name, "replies": replies, "underlay_packets": underlay.count,
            "ttl_at_receiver": ttls[0] if ttls else None, "traceroute": hops}


@check("routing")
def routing(lab) -> dict:
    """Routed at the first hop: a routed ping between VMs on one hypervisor puts 0 packets
    on the underlay; across hypervisors, one tunnel crossing each way (2 packets). The
    receiver sees TTL 63 (one router hop) and traceroute shows the router as hop 1. The
    gateway answers ARP and ping at the VM's own hypervisor: nothing on the underlay."""
    from mininet_topos.capture import Capture, vm_arp, vm_icmp
    topo, results, ok = lab.topo, {}, True
    overlay = topo.kind != "physical"      # the baseline reports the same figures, unjudged
    for kind, (a, b) in sorted(routed_pairs(lab).items()):
        r = results[kind] = _routed_ping(lab, a, b)
        gw = str(topo.gateway(a))
        r["ok"] = r["replies"] == 1 and r["ttl_at_receiver"] == 63 and r["traceroute"] == [gw, str(b.ip)]
        if overlay:
            r["expected_underlay_packets"] = 0 if kind == "same_host" else 2
            r["ok"] = r["ok"] and r["underlay_packets"] == r["expected_underlay_packets"]
        ok &= r["ok"]
    vm = next((v for v in topo.vms if topo.gateway(v)), None)
    if vm is not None:
        lab.vm(vm.name).cmd("ip neigh flush all")
        with Capture(f"({vm_arp(topo.kind)}) or ({vm_icmp(topo.kind)})") as cap:
            replies = ping(lab.vm(vm.name), str(topo.gateway(vm)))
        results["gateway"] = {"vm": vm.name, "gateway": str(topo.gateway(vm)), "replies": replies,
                              "underlay_packets": cap.count,
                              "ok": replies == 1 and (cap.count == 0 or not overlay)}
        ok &= results["gateway"]["ok"]
    return {"ok": ok and bool(results), **results}


@check("underlay-macs")
def underlay_macs(lab) -> dict:
    """The seed's closing claim, measured: after every pair has pinged, which MACs has the
    underlay ("physical") switch learned? With the overlay only the VTEPs'; without it,
    every VM's (and the router's)."""
    ping_pairs(lab, [(a.name, b.name) for a, b in itertools.permutations(lab.topo.vms, 2)
                     if expected_reachable(lab.topo, a, b)])
    table = underlay_mac_table(lab)
    seen_vms = sorted(v for v in table.values() if v.startswith("VM "))
    return {"ok": lab.topo.kind == "physical" or not seen_vms, "learned": len(table),
            "vm_macs_seen": len(seen_vms), "mac_table": table}


def underlay_mac_table(lab) -> dict[str, str]:
    """The MACs the underlay switch has learned, each with what it is ("VM vm1", "hv1 VTEP
    192.168.50.1", "router r1 10.1.1.1", ...)."""
    import subprocess
    from dataplane.hypervisor import UPLINK
    from mininet_topos.lab import UNDERLAY
    fdb = subprocess.run(["bridge", "fdb", "show", "br", UNDERLAY], capture_output=True, text=True).stdout
    learned = sorted({line.split()[0] for line in fdb.splitlines()
                      if "permanent" not in line and "self" not in line and line.strip()})
    vm_macs = {vm.mac: vm.name for vm in lab.topo.vms}
    known = {}          # MAC -> what it is, for the devices of the lab itself
    for hv in lab.topo.hypervisors:
        known[_mac(lab.hv(hv.name), UPLINK)] = f"{hv.name} uplink"
        if lab.topo.kind != "physical":
            known[_mac(lab.hv(hv.name), "br-phy")] = f"{hv.name} VTEP {hv.vtep_ip}"
    if lab.topo.kind == "physical":
        for r in lab.topo.routers:
            for i in r.interfaces:
                known[_mac(lab.hv(r.name), f"vlan{lab.topo.switch(i.switch).vlan}")] = f"router {r.name} {i.ip}"
    return {mac: f"VM {vm_macs[mac]}" if mac in vm_macs else known.get(mac, "other") for mac in learned}


def _mac(node, interface: str) -> str:
    return node.cmd(f"cat /sys/class/net/{interface}/address").strip()


def run_checks(lab, names: list[str]) -> dict:
    results = {name: CHECKS[name](lab) for name in names}
    return {"ok": all(r["ok"] for r in results.values()), "topology": lab.topo.name, "checks": results}


from mininet_topos import checks_cluster, checks_intent  # noqa: E402,F401  registers their checks
from mininet_topos import restart  # noqa: E402,F401  registers hypervisor-restart
from mininet_topos import storm_checks, tls_check, trust_checks  # noqa: E402,F401  registers tls, spoofing, arp-poisoning, packet-in-storm, vm-move
