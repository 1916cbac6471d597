"""The packet walk through the physical baseline (no overlay): vSwitch VLANs, the physical
switch that learns every VM's MAC, and the central router the packet hairpins through.
Derived from ofproto/trace on the hosts' vSwitches and `ip route get` on the router."""
from __future__ import annotations

import re

from packetwalk.trace import RunningLab, Step, Walk, packet_fields


def _vlan(datapath_actions: str) -> str | None:
    m = re.search(r"push_vlan\(vid=(\d+)", datapath_actions)
    return m.group(1) if m else None


def physical_walk(lab: RunningLab, src, dst, proto: str) -> Walk:
    t = lab.topo
    steps: list[Step] = []
    add = lambda where, text, table=None: steps.append(Step(where, text, table))
    src_hv, dst_hv = lab.placement[src.name], lab.placement[dst.name]
    local = dst.ip in t.switch(src.switch).subnet
    router = next((r for r in t.routers if src.switch in {i.switch for i in r.interfaces}), None)
    if proto == "arp":
        target = dst.ip if local else t.gateway(src)
        add(src.name, f"{src.name} sends an ARP request for {target} to ff:ff:ff:ff:ff:ff.")
        add(src_hv, f"{src_hv}'s vSwitch floods it on VLAN {t.switch(src.switch).vlan} (its port group) and up the trunk.")
        add("underlay", "The physical switch floods the broadcast to every trunk, and learns "
                        f"{src.name}'s MAC {src.mac} on the way.")
        who = dst.name if local else f"router {router.name}"
        add(who, f"{who} answers; every host on the VLAN saw the request.")
        return Walk(src.name, dst.name, proto, steps, f"answered by {who}; the broadcast crossed the physical network",
                    True, [src.name, src_hv, "underlay", dst_hv if local else router.name])
    rmac = None
    if not local and router:
        gw_vlan = t.switch(src.switch).vlan
        rmac = lab.netns(router.name, "cat", f"/sys/class/net/vlan{gw_vlan}/address").strip()
    flow = packet_fields(t, src, dst.ip, proto)
    if rmac:
        flow = flow.replace(f"dl_dst={t.vmac}", f"dl_dst={rmac}")
    via = "" if local else f" via its default gateway {t.gateway(src)} (router {router.name}, MAC {rmac})"
    what = "an ICMP echo request" if proto == "icmp" else f"a {proto.replace(':', ' packet to port ')}"
    add(src.name, f"{src.name} sends {what} to {dst.ip}{via}.")
    up = lab.trace(src_hv, "vswitch", f"in_port={src.name},{flow}")
    vlan = _vlan(up.datapath_actions) or t.switch(src.switch).vlan
    add(src_hv, f"{src_hv}'s vSwitch puts it on VLAN {vlan} ({src.name}'s port group) and sends it up the trunk, tagged.",
        "vswitch NORMAL")
    path = [src.name, src_hv, "underlay"]
    ttl = 64
    if not local:
        add("underlay", f"The physical switch forwards it on the destination MAC {rmac}: the router's. "
                        f"It has learned {src.name}'s MAC {src.mac} too.")
        route = lab.netns(router.name, "ip", "route", "get", str(dst.ip), "from", str(src.ip), "iif", f"vlan{vlan}")
        out = re.search(r"dev (\S+)", route)
        ttl = 63
        add(router.name, f"Router {router.name} routes {dst.ip} out of {out.group(1) if out else '?'} "
                         f"({t.switch(dst.switch).subnet}): TTL 64 -> 63, source MAC := its own.", "kernel FIB")
        path += [router.name, "underlay"]
    dvlan = t.switch(dst.switch).vlan
    add("underlay", f"The physical switch forwards it down to {dst_hv} on {dst.name}'s MAC {dst.mac}, tagged {dvlan}: "
                    f"it knows every VM's MAC.")
    down_flow = re.sub(r"dl_src=[^,]+", f"dl_src={rmac or src.mac}", flow).replace("nw_ttl=64", f"nw_ttl={ttl}")
    down_flow = re.sub(r"dl_dst=[^,]+", f"dl_dst={dst.mac}", down_flow)
    down = lab.trace(dst_hv, "vswitch", f"in_port=vmnic0,dl_vlan={dvlan},{down_flow}")
    delivered = bool(re.search(r"(^|,)\d+$", down.datapath_actions)) and "drop" not in down.datapath_actions
    add(dst_hv, f"{dst_hv}'s vSwitch delivers it untagged to {dst.name}'s port (VLAN {dvlan}).", "vswitch NORMAL")
    path += [dst_hv, dst.name]
    hair = "" if local else f" (a hairpin through the central router {router.name})"
    return Walk(src.name, dst.name, proto, steps,
                (f"delivered to {dst.name}{hair}" if delivered else f"dropped on {dst_hv}"), delivered, path)
