"""Checks that a VM cannot speak for another: `spoofing` and `arp-poisoning`.

The attacker VM sends crafted frames (scapy, mininet_topos/craft.py); every other VM
captures what reaches it. Each case is told apart by its UDP source port.
"""
from __future__ import annotations

import json
import re
import shlex
import sys

from mininet_topos.checks import check, ping
from mininet_topos.craft import MARKER_PORT

FOREIGN_IP, FOREIGN_MAC = "192.0.2.66", "02:00:00:00:06:66"
FRAMES = 3


def craft(lab, vm: str, command: str, *args) -> str:
    """Run mininet_topos/craft.py in `vm`'s namespace."""
    argv = " ".join(shlex.quote(a if isinstance(a, str) else json.dumps(a)) for a in args)
    return lab.vm(vm).cmd(f"{shlex.quote(sys.executable)} -m mininet_topos.craft {command} {argv}").strip()


def roles(lab):
    """The attacker, a peer on its logical switch on another hypervisor (else any), and a VM
    its router reaches on another switch."""
    topo = lab.topo
    for a in topo.vms:
        peers = [v for v in topo.vms if v.switch == a.switch and v is not a]
        if not peers or topo.gateway(a) is None:
            continue
        peer = next((v for v in peers if lab.placement[v.name] != lab.placement[a.name]), peers[0])
        routed = next((v for v in topo.vms if v.switch != a.switch and any(
            {a.switch, v.switch} <= {i.switch for i in r.interfaces} for r in topo.routers)), None)
        if routed:
            return a, peer, routed
    return None, None, None


def _drops(lab, vm: str) -> dict:
    rows = lab.controller_state().get("port_security", [])
    return next((r["dropped"] for r in rows if r["port"] == vm), {})


def _wait_drops(lab, vm: str, at_least: dict[str, int]) -> dict:
    """The port's drop counters once they count at least `at_least` (read every 2 s), or as
    they are after 8 s."""
    from mininet_topos.lab import LabError, wait_for

    def counted():
        now = _drops(lab, vm)
        return now if all(now.get(c, 0) >= n for c, n in at_least.items()) else None
    try:
        return wait_for(counted, 8, "the port-security counters")
    except LabError:
        return _drops(lab, vm)


def _reports(lab, vm: str) -> int:
    """Lines the controller logged about `vm`'s dropped frames."""
    log = (lab.rundir / "controller" / "controller.log").read_text(errors="replace")
    return len(re.findall(rf"port security: {re.escape(vm)} on ", log))


@check("spoofing")
def spoofing(lab) -> dict:
    """A VM sends frames with another VM's MAC, another VM's or a foreign source IP (switched
    and routed), and VLAN-tagged: none is delivered (counted at every other VM); the legitimate
    controls are; the drops are counted per port and cause, and reported once per cause."""
    from mininet_topos.capture import Capture
    topo = lab.topo
    a, peer, far = roles(lab)
    if a is None:
        return {"ok": True, "skipped": "no VM with a same-switch peer and a routed one"}
    me = {"kind": "udp", "eth_src": a.mac, "ip_src": str(a.ip)}
    to_peer = {**me, "eth_dst": peer.mac, "ip_dst": str(peer.ip)}
    routed = {**me, "eth_dst": topo.vmac, "ip_dst": str(far.ip)}
    cases = {   # name -> (frame, must it be delivered?)
        "control: switched": (to_peer, True),
        "control: routed": (routed, True),
        "mac: another VM's": ({**to_peer, "eth_src": peer.mac, "eth_dst": "ff:ff:ff:ff:ff:ff"}, False),
        "mac: foreign": ({**to_peer, "eth_src": FOREIGN_MAC}, False),
        "ip: another VM's": ({**to_peer, "ip_src": str(peer.ip)}, False),
        "ip: foreign": ({**to_peer, "ip_src": FOREIGN_IP}, False),
        "routed: another VM's ip": ({**routed, "ip_src": str(peer.ip)}, False),
        "routed: foreign ip": ({**routed, "ip_src": FOREIGN_IP}, False),
        "vlan-tagged": ({**to_peer, "vlan": 10}, False),
    }
    others = [v for v in topo.vms if v is not a]
    caps = [Capture(f"udp dst port {MARKER_PORT}", interface="eth0", netns=f"pw-{v.name}") for v in others]
    for c in caps:
        c.__enter__()
    try:
        for i, (spec, _) in enumerate(cases.values()):
            craft(lab, a.name, "send", {**spec, "sport": 41000 + i}, str(FRAMES))
        ping(lab.vm(a.name), str(peer.ip))          # a last packet through each path: the captures have it all
    finally:
        for c in caps:
            c.__exit__(None, None, None)
    text = "\n".join(c.text for c in caps)
    delivered = {name: len(re.findall(rf"\.{41000 + i} > [\d.]+\.{MARKER_PORT}:", text))
                 for i, name in enumerate(cases)}
    expected = {"mac-spoofed": 2 * FRAMES, "ipv4-spoofed": 4 * FRAMES, "vlan-tagged": FRAMES}
    drops = _wait_drops(lab, a.name, expected)
    spoofed = {n: d for n, d in delivered.items() if not cases[n][1]}
    ok = (all(delivered[n] == FRAMES for n, (_, want) in cases.items() if want)
          and sum(spoofed.values()) == 0
          and all(drops.get(c, 0) >= n for c, n in expected.items()))
    return {"ok": ok, "attacker": a.name, "frames_per_case": FRAMES, "delivered": delivered,
            "spoofed_frames_delivered": sum(spoofed.values()), "drop_counters": drops,
            "log_lines_about_it": _reports(lab, a.name)}


def _neighbours(lab, vm: str) -> dict[str, str]:
    out = lab.vm(vm).cmd("ip -4 neigh show dev eth0")
    return {m.group(1): m.group(2) for m in re.finditer(r"^(\S+) lladdr (\S+)", out, re.M)}


@check("arp-poisoning")
def arp_poisoning(lab) -> dict:
    """A VM sends ARP that lies (a reply, a gratuitous ARP and a request claiming the gateway's
    IP; one claiming its peer's IP; one whose sender MAC is not its own): the victims' neighbour
    tables and the controller's ARP table are unchanged, and no lying ARP reaches a victim."""
    from mininet_topos.capture import Capture
    topo = lab.topo
    a, peer, far = roles(lab)
    if a is None:
        return {"ok": True, "skipped": "no VM with a same-switch peer and a routed one"}
    gw = str(topo.gateway(a))
    victims = [v for v in topo.vms if v.switch == a.switch and v is not a]
    for v in victims:                         # entries to poison: the gateway, and the attacker's peers
        ping(lab.vm(v.name), gw)
    before = {v.name: _neighbours(lab, v.name) for v in victims}
    sw = topo.switch(a.switch).name
    arp_before = lab.controller_state().get("arp_table", {}).get(str(topo.switch(a.switch).vni), {})
    me = {"kind": "arp", "eth_src": a.mac}
    lies = {
        "reply: the gateway is at me": {**me, "op": 2, "eth_dst": peer.mac, "psrc": gw, "hwdst": peer.mac,
                                        "pdst": str(peer.ip)},
        "gratuitous: the gateway is at me": {**me, "op": 1, "psrc": gw, "pdst": gw},
        "request from the gateway's IP": {**me, "op": 1, "psrc": gw, "pdst": str(peer.ip)},
        "gratuitous: my peer's IP is at me": {**me, "op": 1, "psrc": str(peer.ip), "pdst": str(peer.ip)},
        "sender MAC not mine": {**me, "op": 2, "eth_dst": peer.mac, "hwsrc": FOREIGN_MAC, "psrc": str(a.ip),
                                "hwdst": peer.mac, "pdst": str(peer.ip)},
    }
    caps = [Capture(f"arp and (ether src {a.mac} or arp[8:4] = 0x{FOREIGN_MAC.replace(':', '')[:8]})",
                    interface="eth0", netns=f"pw-{v.name}") for v in victims]
    for c in caps:
        c.__enter__()
    try:
        for spec in lies.values():
            craft(lab, a.name, "send", spec, str(FRAMES))
        ping(lab.vm(peer.name), gw)            # a last packet: the victims' captures have it all
    finally:
        for c in caps:
            c.__exit__(None, None, None)
    after = {v.name: _neighbours(lab, v.name) for v in victims}
    poisoned = [f"{v}: {ip} -> {mac}" for v, table in after.items() for ip, mac in table.items()
                if mac == FOREIGN_MAC or (mac == a.mac and ip != str(a.ip))]   # the attacker's own IP at a foreign MAC too
    arp_after = lab.controller_state().get("arp_table", {}).get(str(topo.switch(a.switch).vni), {})
    changed = sorted(ip for ip in set(arp_before) | set(arp_after) if arp_before.get(ip) != arp_after.get(ip))
    reach = ping(lab.vm(peer.name), str(far.ip))
    delivered = sum(c.count for c in caps)
    drops = _wait_drops(lab, a.name, {"arp-spoofed": len(lies) * FRAMES})
    ok = not poisoned and not changed and delivered == 0 and reach == 1 \
        and drops.get("arp-spoofed", 0) >= len(lies) * FRAMES
    return {"ok": ok, "attacker": a.name, "switch": sw, "victims": [v.name for v in victims],
            "lies_sent": {k: FRAMES for k in lies}, "lying_arp_delivered": delivered,
            "poisoned_entries": poisoned, "neighbours_before": before, "neighbours_after": after,
            "controller_bindings_changed": changed, "victim_still_routes": reach == 1, "drop_counters": drops}
