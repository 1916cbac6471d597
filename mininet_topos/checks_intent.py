"""Checks of the controller's own database (`packetwalk lab --test persistence,nb-cluster,squatting`).

persistence  an API-made switch, port, LIF and route survive kill -9 of the controller and
             a restart; a VM on that switch pings through its gateway all along (10 ms)
nb-cluster   the database as a 3-member Raft cluster: its leader is killed while API writes
             stream in; every acknowledged write is still there, writes resume, no ping lost
squatting    gratuitous ARPs for another port's address and for a free one change nothing a
             later real port needs
"""
from __future__ import annotations

import itertools
import re
import threading
import time

from mininet_topos.checks import check

VM_MAC = "00:50:56:0f:{:02x}:{:02x}"


def _api(lab, method: str, path: str, body=None):
    from packetwalk.show import request
    return request(lab.api, method, path, body)


class Pinger:
    """`ping -i 0.01` from a VM in the background, into a file; replies counted as they come."""

    def __init__(self, lab, vm, ip: str, name: str):
        self.node, self.out = lab.vm(vm), lab.rundir / f"ping-{name}.txt"
        self.pid = int(self.node.cmd(f"ping -D -n -i 0.01 -W 1 {ip} > {self.out} 2>&1 & echo $!").split()[-1])

    def replies(self) -> int:
        try:
            return self.out.read_text().count("bytes from")
        except OSError:
            return 0

    def wait_replies(self, more: int, timeout: float = 20.0) -> None:
        from mininet_topos.lab import wait_for
        target = self.replies() + more
        wait_for(lambda: self.replies() >= target, timeout, f"{more} ping replies from {self.node.name}")

    def stop(self) -> dict:
        """Sent and lost up to the last reply (the echo in flight when ping is stopped is
        neither): lost = sequence numbers with no reply; duplicated = replies to a sequence
        number already answered (a VM on the move gets frames in both places for a moment)."""
        self.node.cmd(f"kill -INT {self.pid}; wait {self.pid} 2>/dev/null")
        text = self.out.read_text()
        seqs = {int(n) for n in re.findall(r"bytes from .* icmp_seq=(\d+)", text)}
        sent = max(seqs) if seqs else 0
        return {"pings_sent": sent, "pings_lost": sent - len(seqs), "pings_duplicated": text.count("(DUP!)")}


def _free_vni(lab, base: int) -> int:
    used = {s["vni"] for s in _api(lab, "GET", "/v1/logical-switches")}
    return next(v for v in itertools.count(base) if v not in used)


def _new_mac(n: int) -> str:
    return VM_MAC.format(n >> 8 & 0xFF, n & 0xFF)


@check("persistence")
def persistence(lab) -> dict:
    from mininet_topos.lab import wait_for
    router = lab.topo.routers[0].name if lab.topo.routers else None
    target = next((vm for vm in lab.topo.vms if lab.topo.gateway(vm)), None)
    if router is None or target is None:
        return {"ok": False, "error": "needs a topology with a router and a VM behind it"}
    vni = _free_vni(lab, 5090)
    made = {"switch": {"name": "persist", "vni": vni, "subnet": "10.199.9.0/24"},
            "port": {"name": "pvm", "switch": "persist", "mac": _new_mac(1), "ips": ["10.199.9.10"]},
            "interface": {"switch": "persist", "ip": "10.199.9.1"},
            "route": {"prefix": "10.198.0.0/16", "next_hop": "10.199.9.10"}}
    _api(lab, "POST", "/v1/logical-switches", made["switch"])
    _api(lab, "POST", "/v1/logical-ports", made["port"])
    _api(lab, "POST", f"/v1/routers/{router}/interfaces", made["interface"])
    _api(lab, "POST", f"/v1/routers/{router}/routes", made["route"])
    hv = lab.topo.hypervisors[0].name
    lab.add_vm("pvm", hv, "10.199.9.10", made["port"]["mac"], 24, "10.199.9.1")
    pinger = Pinger(lab, "pvm", str(target.ip), "persistence")
    try:
        pinger.wait_replies(20)                       # before: through the gateway, routed
        t0 = time.monotonic()
        lab.kill_controller()
        pinger.wait_replies(50)                       # during: no controller at all
        lab.start_controller()
        lab._wait_ready()
        wait_for(lambda: "pvm" in _attached(lab, hv), 20, "pvm to be attached again")
        restart_s = round(time.monotonic() - t0, 2)
        pinger.wait_replies(50)                       # after
    finally:
        pinged = pinger.stop()
    kept = {
        "switch": any(s["name"] == "persist" and s["vni"] == vni for s in _api(lab, "GET", "/v1/logical-switches")),
        "port": _api(lab, "GET", "/v1/logical-ports/pvm")["ips"] == ["10.199.9.10"],
        "interface": any(i["switch"] == "persist" for i in _api(lab, "GET", f"/v1/routers/{router}")["interfaces"]),
        "route": any(r["prefix"] == "10.198.0.0/16" for r in _api(lab, "GET", f"/v1/routers/{router}")["routes"]),
    }
    return {"ok": all(kept.values()) and pinged["pings_lost"] == 0 and pinged["pings_sent"] > 100,
            "kept_after_kill_9": kept, "vm": "pvm", "pinged": str(target.ip), "via": made["interface"]["ip"],
            "kill_to_ready_s": restart_s, **pinged}


def _attached(lab, hv: str) -> set[str]:
    return {a["vm"] for a in lab.controller_state().get("hypervisors", {}).get(hv, {}).get("attachments", {}).values()}


@check("nb-cluster")
def nb_cluster(lab) -> dict:
    from mininet_topos.lab import wait_for
    if lab.nb_cluster < 3:
        return {"ok": False, "error": "needs the database as a cluster: packetwalk lab --nb-cluster 3"}
    a, b = next(((a, b) for a, b in itertools.permutations(lab.topo.vms, 2)
                 if lab.topo.gateway(a) and lab.topo.gateway(b) and a.hypervisor != b.hypervisor), (None, None))
    pinger = Pinger(lab, a.name, str(b.ip), "nb-cluster") if a else None
    base = _free_vni(lab, 7000)
    acked, refused, stop = [], [], threading.Event()

    def writer():
        for i in itertools.count():
            if stop.is_set():
                return
            name = f"nbw{i}"
            try:
                _api(lab, "POST", "/v1/logical-switches",
                     {"name": name, "vni": base + i, "subnet": f"10.{200 + i // 250}.{i % 250}.0/24"})
                acked.append((name, time.monotonic()))
            except Exception as e:               # the API refused or timed out: not acknowledged
                refused.append((name, str(e)[:120]))
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(acked) >= 20, 30, "20 acknowledged writes before the leader stops")
        leader = lab.nb.leader()
        from dataplane.hypervisor import stop_pid
        killed_at = time.monotonic()
        stop_pid(lab.nb.pid(leader), "ovsdb-server")
        wait_for(lambda: sum(t > killed_at for _, t in acked) >= 20, 60, "20 acknowledged writes after the leader stopped")
        resumed = next(t for _, t in acked if t > killed_at) - killed_at
        new_leader = wait_for(lab.nb.leader, 20, "a new leader")
    finally:
        stop.set()
        thread.join(30)
        pinged = pinger.stop() if pinger else {"pings_sent": 0, "pings_lost": 0}
    names = {s["name"] for s in _api(lab, "GET", "/v1/logical-switches")}
    stored = _names_in_member(lab, new_leader)
    missing = sorted(n for n, _ in acked if n not in names or n not in stored)
    lab.nb.start_member(leader, lab.manifest)       # the stopped member rejoins
    intent = _api(lab, "GET", "/v1/intent")
    intent["logical_switches"] = [s for s in intent["logical_switches"] if not s["name"].startswith("nbw")]
    _api(lab, "PUT", "/v1/intent", intent)
    return {"ok": not missing and pinged["pings_lost"] == 0 and pinged["pings_sent"] > 0,
            "stopped_leader": lab.nb.member(leader), "new_leader": lab.nb.member(new_leader),
            "writes_acknowledged": len(acked), "writes_refused_or_timed_out": len(refused),
            "acknowledged_writes_missing": missing, "writes_resumed_after_s": round(resumed, 2),
            "refusals": refused[:3], "ping": f"{a.name}->{b.name}" if a else None, **pinged}


def _names_in_member(lab, i: int) -> set[str]:
    """Logical switch names as one member of the cluster holds them (not through the controller)."""
    return {row["name"] for row in lab.nb.select(i, "Logical_Switch", ["name"])}


def garp(node, ip: str, mac: str) -> None:
    """A gratuitous ARP (request, sender = target = ip) from `node`'s eth0 with any address."""
    frame = ("b'\\xff'*6+m+b'\\x08\\x06'+struct.pack('>HHBBH',1,0x800,6,4,1)+m+i+b'\\x00'*6+i")
    out = node.cmd("/usr/bin/python3 -c \"import socket,struct;s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);"
             f"s.bind(('eth0',0));m=bytes.fromhex('{mac.replace(':', '')}');i=socket.inet_aton('{ip}');"
             f"s.send({frame})\" 2>&1")
    if out.strip():
        from mininet_topos.lab import LabError
        raise LabError(f"{node.name}: could not send a gratuitous ARP: {out.strip()}")


@check("squatting")
def squatting(lab) -> dict:
    """Gratuitous ARPs that claim addresses: one for another port's configured address and one
    for a free address from a configured port (neither taken); a free address squatted by a
    "learn the IP" port, which a later real port with that address still gets."""
    from mininet_topos.lab import wait_for
    squatter, victim = next(((a, b) for a, b in itertools.permutations(lab.topo.vms, 2)
                             if a.switch == b.switch), (None, None))
    if squatter is None:
        return {"ok": False, "error": "needs two VMs on one logical switch"}
    sw = lab.topo.switch(squatter.switch)
    taken = {b["ip"] for b in _api(lab, "GET", f"/v1/logical-switches/{sw.name}/arp-table")["bindings"]}
    free = [str(h) for h in sw.subnet.hosts() if str(h) not in taken]
    free_ip, learn_ip = free[-1], free[-2]
    hv = lab.placement[squatter.name]
    other_hv = next(h.name for h in lab.topo.hypervisors if h.name != hv) if len(lab.topo.hypervisors) > 1 else hv
    before = _arp_table(lab, sw.name)
    # a learn-IP port on the squatter's hypervisor: once its own announcement is learned, the
    # squatter's (sent before it, on the same hypervisor) have been decided too
    _api(lab, "POST", "/v1/logical-ports", {"name": "lrn", "switch": sw.name, "mac": _new_mac(2), "learn": True})
    lrn = lab.add_vm("lrn", hv, learn_ip, _new_mac(2), sw.subnet.prefixlen, None)
    wait_for(lambda: "lrn" in _attached(lab, hv), 10, "the learn-IP port lrn to attach")
    garp(lab.vm(squatter.name), str(victim.ip), squatter.mac)
    garp(lab.vm(squatter.name), free_ip, squatter.mac)
    garp(lrn, learn_ip, _new_mac(2))
    wait_for(lambda: _learned(lab).get(learn_ip) == "lrn", 10, "lrn's own address to be learned")
    after = _arp_table(lab, sw.name)
    configured_kept = after.get(str(victim.ip)) == before.get(str(victim.ip)) == victim.mac
    free_not_taken = free_ip not in after
    # the learn-IP port squats the free address; then a real port is configured with it
    garp(lrn, free_ip, _new_mac(2))
    wait_for(lambda: _learned(lab).get(free_ip) == "lrn", 10, "lrn's squat to be learned")
    _api(lab, "POST", "/v1/logical-ports", {"name": "real", "switch": sw.name, "mac": _new_mac(3), "ips": [free_ip]})
    lab.add_vm("real", other_hv, free_ip, _new_mac(3), sw.subnet.prefixlen, None)
    wait_for(lambda: "real" in _attached(lab, other_hv), 10, "the real port to attach")
    table = _arp_table(lab, sw.name)
    lab.vm(victim.name).cmd(f"ip neigh flush dev eth0 to {free_ip}")
    from mininet_topos.checks import ping
    reached = ping(lab.vm(victim.name), free_ip, count=2) > 0
    answered_by = re.search(r"lladdr (\S+)", lab.vm(victim.name).cmd(f"ip neigh show {free_ip}"))
    real_ok = table.get(free_ip) == _new_mac(3) and reached and answered_by and answered_by.group(1) == _new_mac(3)
    for port in ("lrn", "real"):
        _api(lab, "DELETE", f"/v1/logical-ports/{port}")
    return {"ok": bool(configured_kept and free_not_taken and real_ok),
            "squatter": squatter.name, "claimed_configured": str(victim.ip), "configured_binding_kept": configured_kept,
            "claimed_free": free_ip, "free_address_not_bound": free_not_taken,
            "learn_port_squatted_then_real_port_got_it": bool(real_ok),
            "conflicts_reported": len(_api(lab, "GET", "/v1/conflicts"))}


def _arp_table(lab, switch: str) -> dict[str, str]:
    return {b["ip"]: b["mac"] for b in _api(lab, "GET", f"/v1/logical-switches/{switch}/arp-table")["bindings"]}


def _learned(lab) -> dict[str, str]:
    return {b["ip"]: b["port"] for b in _api(lab, "GET", "/v1/learned-bindings")}
