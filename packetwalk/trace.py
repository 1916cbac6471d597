"""The packet walk: follow a packet through the real flows of a running lab and tell it in
numbered steps, the seed's way: which device decides what, and why.

The walk is derived from `ovs-appctl ofproto/trace` on the source hypervisor, carried
through the tunnel to the destination hypervisor's trace; each step names the table and
the flow (cookie, and the object the controller made it for) that decided it.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import subprocess
from pathlib import Path

from controller.flows import owner_cookie, COOKIE_OWNER_MASK, COOKIE_APP_MASK
from controller.tables import Table
from mininet_topos.lab import LAB_FILE, RUNDIR
from mininet_topos.topology import Topology, load_topology
from packetwalk.ofproto_trace import Hit, Trace, parse


class WalkError(RuntimeError):
    pass


@dataclasses.dataclass
class Step:
    where: str
    text: str
    table: str | None = None
    cookie: str | None = None
    owner: str | None = None


@dataclasses.dataclass
class Walk:
    src: str
    dst: str
    proto: str
    steps: list[Step]
    verdict: str
    delivered: bool
    path: list[str]          # node ids for `packetwalk diagram --walk`

    def to_dict(self) -> dict:
        return {"src": self.src, "dst": self.dst, "proto": self.proto, "verdict": self.verdict,
                "delivered": self.delivered, "path": self.path,
                "steps": [{"n": i, **dataclasses.asdict(s)} for i, s in enumerate(self.steps, 1)]}

    def text(self) -> str:
        lines = [f"Packet walk: {self.src} -> {self.dst} ({self.proto})"]
        for i, s in enumerate(self.steps, 1):
            why = (f"   [{s.table}, cookie {s.cookie}: {s.owner}]" if s.cookie
                   else f"   [{s.table}]" if s.table else "")
            lines.append(f"{i:2}. {s.text}{why}")
        lines.append(f"Verdict: {self.verdict}")
        return "\n".join(lines)


class RunningLab:
    """What `packetwalk lab` left in its run directory: topology, placement, OVS sockets,
    the controller's tables."""

    def __init__(self, rundir: Path = RUNDIR):
        self.rundir = Path(rundir)
        try:
            info = json.loads((self.rundir / LAB_FILE).read_text())
        except (OSError, ValueError):
            raise WalkError("no lab is running (start one with `packetwalk lab`)") from None
        self.topo: Topology = load_topology(info["topology"])
        self.placement: dict[str, str] = info["placement"]
        try:
            self.state = json.loads((self.rundir / "controller" / "state.json").read_text())
        except (OSError, ValueError):
            self.state = {}

    def appctl(self, node: str, *args: str) -> str:
        pid = (self.rundir / node / "ovs-vswitchd.pid").read_text().strip()
        run = subprocess.run(["ovs-appctl", "-t", str(self.rundir / node / f"ovs-vswitchd.{pid}.ctl"), *args],
                             capture_output=True, text=True)
        if run.returncode:
            raise WalkError(f"{node}: ovs-appctl {' '.join(args)}: {run.stderr.strip()}")
        return run.stdout

    def trace(self, node: str, bridge: str, flow: str) -> Trace:
        return parse(self.appctl(node, "ofproto/trace", bridge, flow))

    def netns(self, node: str, *cmd: str) -> str:
        return subprocess.run(["ip", "netns", "exec", f"pw-{node}", *cmd], capture_output=True, text=True).stdout


def packet_fields(topo: Topology, src, dst_ip, proto: str) -> str:
    """The ofproto/trace flow for what `src` would send to `dst_ip`."""
    subnet = topo.switch(src.switch).subnet
    gateway = topo.gateway(src)
    local = ipaddress.ip_address(dst_ip) in subnet
    if proto == "arp":
        target = dst_ip if local else gateway
        return (f"arp,dl_src={src.mac},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa={src.ip},"
                f"arp_tpa={target},arp_sha={src.mac}")
    dst_vm = next((v for v in topo.vms if v.ip == ipaddress.ip_address(dst_ip) and v.switch == src.switch), None)
    dl_dst = dst_vm.mac if local and dst_vm else (topo.vmac if not local else "ff:ff:ff:ff:ff:ff")
    base = f"dl_src={src.mac},dl_dst={dl_dst},nw_src={src.ip},nw_dst={dst_ip},nw_ttl=64"
    if proto == "icmp":
        return f"icmp,{base},icmp_type=8,icmp_code=0"
    kind, _, port = proto.partition(":")
    return f"{kind},{base},tp_src=40000,tp_dst={port}"


def parse_proto(proto: str) -> str:
    kind, _, port = proto.partition(":")
    if kind in ("icmp", "arp") and not port:
        return kind
    if kind in ("udp", "tcp") and port.isdigit() and 0 < int(port) < 65536:
        return proto
    raise WalkError(f"--proto {proto!r}: use icmp, arp, udp:PORT or tcp:PORT (PORT 1-65535)")


def resolve_vm(topo: Topology, name: str):
    try:
        return topo.vm(name)
    except KeyError:
        raise WalkError(f"unknown VM {name!r}; the lab's VMs: {', '.join(v.name for v in topo.vms)}") from None


def walk(lab: RunningLab, src_name: str, dst_name: str, proto: str = "icmp") -> Walk:
    proto = parse_proto(proto)
    src, dst = resolve_vm(lab.topo, src_name), resolve_vm(lab.topo, dst_name)
    if lab.topo.kind == "physical":
        from packetwalk.physical_walk import physical_walk
        return physical_walk(lab, src, dst, proto)
    return OverlayWalk(lab, src, dst, proto).run()


class OverlayWalk:
    """Builds the walk through the overlay: source hypervisor, tunnel, destination."""

    def __init__(self, lab: RunningLab, src, dst, proto: str):
        self.lab, self.topo, self.src, self.dst, self.proto = lab, lab.topo, src, dst, proto
        self.steps: list[Step] = []
        self.path = [src.name]
        self.vni_on_wire = None
        self.owners = self._owners()

    # --- who made which flow --------------------------------------------------------------
    def _owners(self) -> dict[int, str]:
        """Owner cookie bits -> owner, for every object the controller makes flows for."""
        t, names = self.topo, ["pipeline"]
        names += [f"port:{v.name}" for v in t.vms] + [f"vtep:{h.name}" for h in t.hypervisors]
        names += [f"ls:{s.vni}" for s in t.switches]
        for r in t.routers:
            names += [f"lr:{r.name}"] + [f"lif:{r.name}/{i.switch}" for i in r.interfaces]
            names += [f"route:{r.name}/{rt.prefix}" for rt in r.routes]
        for vni, table in self.lab.state.get("arp_table", {}).items():
            names += [f"binding:{vni}/{ip}" for ip in table]
        return {owner_cookie(n): n for n in names}

    def owner(self, hit: Hit) -> str:
        if hit.cookie is None:
            return "not ours"
        return self.owners.get(hit.cookie & (COOKIE_APP_MASK | COOKIE_OWNER_MASK), "unknown owner")

    def add(self, where: str, text: str, hit: Hit | None = None):
        if hit is None:
            self.steps.append(Step(where, text))
        else:
            name = Table(hit.table).name.lower() if hit.table in Table._value2member_map_ else str(hit.table)
            self.steps.append(Step(where, text, f"table {hit.table} {name}",
                                   f"{hit.cookie:#x}" if hit.cookie is not None else None, self.owner(hit)))

    # --- the walk ------------------------------------------------------------------------
    def run(self) -> Walk:
        s, t = self.src, self.topo
        hv = self.lab.placement[s.name]
        what = {"arp": f"an ARP request for {self._arp_target()} to ff:ff:ff:ff:ff:ff",
                "icmp": f"an ICMP echo request to {self.dst.ip}"}.get(self.proto,
                                                                      f"a {self.proto.replace(':', ' packet to port ')} at {self.dst.ip}")
        via = "" if self.proto == "arp" or self._same_subnet() else f" via its default gateway {t.gateway(s)} (the vMAC {t.vmac})"
        self.add(s.name, f"{s.name} sends {what}{via}.")
        trace = self.lab.trace(hv, "br-int", f"in_port={s.name},{packet_fields(t, s, self.dst.ip, self.proto)}")
        verdict = self.explain(hv, trace)
        return Walk(s.name, self.dst.name, self.proto, self.steps, verdict[0], verdict[1], self.path)

    def _same_subnet(self) -> bool:
        return self.dst.ip in self.topo.switch(self.src.switch).subnet

    def _arp_target(self):
        return self.dst.ip if self._same_subnet() else self.topo.gateway(self.src)

    def explain(self, hv: str, trace: Trace) -> tuple[str, bool]:
        for hit in trace.hits:
            owner = self.owner(hit)
            verdict = self.step(hv, hit, owner, trace)
            if verdict:
                return verdict
        if trace.no_match_table is not None:
            return f"dropped on {hv}: no flow matches in table {trace.no_match_table}", False
        return f"dropped on {hv}", False

    def step(self, hv: str, hit: Hit, owner: str, trace: Trace):
        """Narrate one table hit; return (verdict, delivered) when the walk ends here."""
        t, f = self.topo, trace.final_flow
        table = Table(hit.table) if hit.table in Table._value2member_map_ else None
        kind, _, name = owner.partition(":")
        if table == Table.CLASSIFY and kind == "port":
            sw = t.switch(t.vm(name).switch)
            self.add(hv, f"{hv} takes it in on {name}'s port and puts it on logical switch {sw.name} (VNI {sw.vni}).", hit)
        elif table == Table.CLASSIFY and kind == "vtep":
            vni = self.vni_on_wire
            self.add(hv, f"{hv}'s VTEP {t.hypervisor(hv).vtep_ip} takes it off the tunnel from {name} "
                         f"and decapsulates VNI {vni}: it was switched (and routed) at its first hop.", hit)
        elif table == Table.ARP_SNOOP and hit.to_controller:
            self.add(hv, f"{hv} hands the ARP to the controller: the sender's binding is not known yet "
                         f"(in unicast mode the host relays the VM's IP to the controllers).", hit)
            return "sent to the controller", False
        elif table == Table.ARP_RESPONDER and hit.in_port:
            ip, mac = f.get("arp_spa"), f.get("arp_sha")
            who = f"the router's interface, at the vMAC {mac}" if mac == t.vmac else f"at {mac}"
            self.add(hv, f"{hv} answers it locally (ARP suppression): {ip} is {who}. "
                         f"The request never leaves {hv}.", hit)
            self.path.append(hv)
            return f"answered by {hv} (ARP suppression); nothing crossed the underlay", True
        elif table == Table.ARP_RESPONDER and hit.to_controller:
            self.add(hv, f"{hv} has no binding for the target: it asks the controller, which answers "
                         f"if it knows and otherwise floods the request.", hit)
            return "sent to the controller", False
        elif table == Table.L3_INPUT and hit.in_port:
            r = self._router(name)
            self.add(hv, f"{hv}'s instance of router {r} answers the ping to its own interface "
                         f"{f.get('nw_src')} itself.", hit)
            self.path += [f"{r}@{hv}", self.src.name]
            return f"answered by router {r} on {hv}; nothing crossed the underlay", True
        elif table == Table.L3_INPUT and kind == "lr":
            self.add(hv, f"It is addressed to the vMAC {t.vmac}: router {name} takes it, on {hv} itself "
                         f"(the distributed router's first hop).", hit)
            self.path.append(f"{name}@{hv}")
        elif table == Table.L3_ROUTING and hit.to_controller:
            self.add(hv, f"Router has no route to {f.get('nw_dst')}: the controller sends ICMP net unreachable.", hit)
            return "dropped: no route (ICMP net unreachable)", False
        elif table == Table.L3_ROUTING:
            r, sw = self._router(name), t.switch(self._switch_of_vni(int(f.get("tun_id"), 16)))
            how = (f"static route {name.split('/', 1)[1]}" if kind == "route"
                   else f"its interface on {sw.name} ({sw.subnet})")
            self.add(hv, f"Router {r} on {hv} routes {f.get('nw_dst')} via {how}: TTL 64 -> {f.get('nw_ttl')}, "
                         f"source MAC := vMAC, moved onto logical switch {sw.name} (VNI {sw.vni}).", hit)
        elif table == Table.PORT_SECURITY and hit.actions in ([], ["drop"]):
            from controller.security import CAUSES
            cause = CAUSES.get(hit.priority, "not from the port's MAC and addresses")
            self.add(hv, f"Port security on {hv} drops it ({cause}): a VM speaks only for itself.", hit)
            return f"dropped by port security on {hv} ({cause})", False
        elif table == Table.L3_MTU and hit.to_controller:
            self.add(hv, "It is larger than the logical MTU: the controller answers ICMP fragmentation "
                         "needed (DF set) or fragments it.", hit)
            return "sent to the controller (larger than the MTU)", False
        elif table == Table.L3_ARP_RESOLVE and hit.to_controller:
            self.add(hv, f"No binding for the next hop: the controller ARPs for it from the router's interface "
                         f"and sends host unreachable if nobody answers.", hit)
            return "sent to the controller (next hop unresolved)", False
        elif table == Table.L3_ARP_RESOLVE:
            self.add(hv, f"The controller's ARP table says the next hop is at {f.get('dl_dst')}.", hit)
        elif table == Table.L2_LOOKUP and kind == "port" and hit.outputs:
            return self._unicast(hv, hit, name, trace)
        elif table == Table.FLOOD and hit.actions:
            return self._flood(hv, hit, trace)
        elif not hit.actions:
            self.add(hv, f"No flow wants it in {table.name.lower() if table else hit.table}: dropped.", hit)
            return f"dropped on {hv} in table {hit.table}", False
        return None

    def _unicast(self, hv, hit, vm, trace):
        t = self.topo
        where = self.lab.placement.get(vm)
        if not trace.tunnels:
            self.add(hv, f"Known unicast: {t.vm(vm).mac} is {vm}, on {hv} itself: out of {vm}'s port.", hit)
            self.path += [hv, vm] if self.path[-1] != hv else [vm]
            return f"delivered to {vm} on {hv}" + ("; nothing crossed the underlay" if hv == self.lab.placement[self.src.name] else ""), True
        tun = trace.tunnels[0]
        vni = int(trace.final_flow.get("tun_id", "0"), 16)
        self.add(hv, f"Known unicast: {t.vm(vm).mac} is {vm}, behind VTEP {tun['remote_ip']} ({where}).", hit)
        self._cross(hv, where, vni, tun)
        return self._remote(where, hv, trace)

    def _cross(self, hv, remote, vni, tun):
        t = self.topo
        self.vni_on_wire = vni
        self.add(hv, f"{hv}'s VTEP {t.hypervisor(hv).vtep_ip} encapsulates it in VXLAN, VNI {vni}, "
                     f"to VTEP {tun['remote_ip']}.")
        mine = self.src.name if self.lab.placement[self.src.name] == hv else "any VM"
        self.add("underlay", f"The physical switch forwards on the VTEP MACs ({tun.get('local_mac', '?')} -> "
                             f"{tun.get('remote_mac', '?')}); it never sees {mine}'s MAC.")
        self.path += [hv, "underlay"] if self.path[-1] != hv else ["underlay"]

    def _remote(self, remote: str, hv: str, trace: Trace):
        f = trace.final_flow
        keep = [k for k in ("icmp", "arp", "udp", "tcp", "ip") if k in f][:1]
        inner = ",".join(keep + [f"{k}={v}" for k, v in f.items() if k.startswith(("dl_", "nw_", "icmp_", "arp_", "tp_"))
                                 and k not in ("nw_tos", "nw_ecn", "nw_frag")])
        tunnel = (f"in_port=vx-{hv},tun_id={f.get('tun_id')},tun_src={self.topo.hypervisor(hv).vtep_ip},"
                  f"tun_dst={self.topo.hypervisor(remote).vtep_ip}")
        self.path.append(remote)
        return self.explain(remote, self.lab.trace(remote, "br-int", f"{tunnel},{inner}"))

    def _flood(self, hv, hit, trace):
        local = [self._port_name(hv, p) for p in hit.outputs if not self._is_tunnel(hv, p)]
        remote = [tu["remote_ip"] for tu in trace.tunnels]
        text = f"Broadcast/unknown: {hv} floods it to its local ports of the VNI ({', '.join(local) or 'none'})"
        text += f" and replicates it head-end to VTEPs {', '.join(remote)} (unicast mode)." if remote else "."
        self.add(hv, text, hit)
        return f"flooded from {hv} to {len(local)} local port(s) and {len(remote)} VTEP(s)", bool(local or remote)

    # --- small lookups --------------------------------------------------------------------
    def _hv_state(self, hv):
        return self.lab.state.get("hypervisors", {}).get(hv, {})

    def _port_name(self, hv, ofport):
        for port, a in self._hv_state(hv).get("attachments", {}).items():
            if str(a["ofport"]) == str(ofport):
                return port
        return f"port {ofport}"

    def _is_tunnel(self, hv, ofport):
        return any(str(tn.get("ofport")) == str(ofport) for tn in self._hv_state(hv).get("tunnels", {}).values())

    def _router(self, owner_name: str) -> str:
        return owner_name.split("/", 1)[0]

    def _switch_of_vni(self, vni: int) -> str:
        return next(s.name for s in self.topo.switches if s.vni == vni)
