"""Draw a topology the way a network engineer sketches it, optionally with a packet's walk on top.

Overlay (NSX style): one box per hypervisor holding its VMs, an instance of every distributed
router whose switches it hosts, and its vSwitch/VTEP; the VTEPs meet at the underlay. A
"logical view" beside it shows the logical switches (VNIs) and routers (LIFs) alone.
Physical: plain hosts with a VLAN-trunked vSwitch, and one central router on the physical switch.

A walk is a list of ids: VM names, hypervisor names (that host's vSwitch/VTEP), "underlay", and
"<router>@<hypervisor>" (overlay) or "<router>" (physical). It is drawn as numbered red edges.
"""
from html import escape
from pathlib import Path

import graphviz

FORMATS = (".svg", ".png")
UNDERLAY = "underlay"
FONT = "Helvetica"
WALK = "red"
# (fill, line) per logical switch, in topology order; no reds: red is the packet's walk.
PALETTE = (("#dbeafe", "#2563eb"), ("#dcfce7", "#16a34a"), ("#fef3c7", "#d97706"),
           ("#f3e8ff", "#9333ea"), ("#ccfbf1", "#0d9488"), ("#e0e7ff", "#4f46e5"),
           ("#fce7f3", "#db2777"), ("#f1f5f9", "#475569"))


def render(topology, out, path: list[str] | None = None, title: str | None = None,
           placement: dict[str, str] | None = None) -> Path:
    """Draw topology to out (.svg or .png, from the suffix) and return out as a Path.

    placement maps VM name -> hypervisor name, overriding the topology (VMs may have moved).
    """
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"cannot draw {out.name}: suffix {out.suffix or '(none)'!r} is not "
                         f"supported (use one of {', '.join(FORMATS)})")
    drawing = _Drawing(topology, placement or {})
    drawing.walk(path or [])
    graph = drawing.graph
    graph.attr(label=_title(topology, path, title))
    if out.suffix.lower() == ".png":
        graph.attr(dpi="130")
    out.write_bytes(graph.pipe(format=out.suffix.lower()[1:]))
    return out


def _title(topology, path, title) -> str:
    if title is not None:
        return title
    kind = "NSX overlay (VXLAN)" if topology.kind == "overlay" else "physical network (VLANs)"
    walk = f"\npacket walk: {' → '.join(path)}" if path else ""
    return f"{topology.name}: {kind}{walk}"


def _label(name: str, *lines: str, small: tuple[str, ...] = ()) -> str:
    """An HTML-like label: the name in bold, then lines, then small grey lines."""
    rows = [f"<b>{escape(name)}</b>", *lines]
    rows += [f'<font point-size="9" color="#475569">{escape(s)}</font>' for s in small]
    return "<" + "<br/>".join(rows) + ">"


class _Drawing:
    def __init__(self, topology, placement: dict[str, str]):
        self.topo = topology
        self.overlay = topology.kind == "overlay"
        self.host = {vm.name: vm.hypervisor for vm in topology.vms}
        hv_names = [hv.name for hv in topology.hypervisors]
        for vm, hv in placement.items():
            if vm not in self.host:
                _unknown("VM", vm, self.host)
            if hv not in hv_names:
                _unknown("hypervisor", hv, hv_names)
        self.host.update(placement)
        self.colour = {sw.name: PALETTE[i % len(PALETTE)] for i, sw in enumerate(topology.switches)}
        self.ids = {UNDERLAY: UNDERLAY, **{vm: f"vm_{vm}" for vm in self.host}}  # walk id -> node
        self.graph = graphviz.Digraph(topology.name)
        self.graph.attr(rankdir="TB", newrank="true", nodesep="0.35", ranksep="0.7",
                        fontname=FONT, fontsize="16", labelloc="t", bgcolor="white", pad="0.3")
        self.graph.attr("node", fontname=FONT, fontsize="11", shape="box",
                        style="rounded,filled", penwidth="1.2")
        self.graph.attr("edge", fontname=FONT, fontsize="10", arrowhead="none")
        for hv in topology.hypervisors:
            self.hypervisor(hv)
        self.underlay()
        self.logical_view()

    def segment(self, switch) -> str:
        return f"VNI {switch.vni}" if self.overlay else f"VLAN {switch.vlan}"

    def lifs(self, router) -> str:
        return " | ".join(f'<font color="{self.colour[lif.switch][1]}">{lif.ip}</font>'
                          for lif in router.interfaces)

    def hypervisor(self, hv):
        order = [sw.name for sw in self.topo.switches]
        vms = sorted((vm for vm in self.topo.vms if self.host[vm.name] == hv.name),
                     key=lambda vm: order.index(vm.switch))   # same switch, same column
        switches = {vm.switch for vm in vms}
        vswitch = f"hv_{hv.name}"
        self.ids[hv.name] = vswitch
        heading = _label(hv.name, f"VTEP {hv.vtep_ip}" if self.overlay else "host (no VTEP)")
        with self.graph.subgraph(name=f"cluster_{hv.name}") as box:
            box.attr(label=heading, style="rounded,filled", fillcolor="#f8fafc",
                     color="#94a3b8", fontsize="13", margin="14")
            for vm in vms:
                fill, line = self.colour[vm.switch]
                sw = self.topo.switch(vm.switch)
                box.node(f"vm_{vm.name}", _label(vm.name, str(vm.ip), small=(
                    vm.mac, f"{sw.name} · {self.segment(sw)}")), fillcolor=fill, color=line)
                box.edge(f"vm_{vm.name}", vswitch, color=line, penwidth="2")
            _row(box, [f"vm_{vm.name}" for vm in vms])
            for router in self.topo.routers if self.overlay else ():
                if switches & {lif.switch for lif in router.interfaces}:
                    self.router_instance(box, router, hv.name, vms, vswitch)
            carried = ", ".join(str(s.vni if self.overlay else s.vlan)
                                for s in self.topo.switches if s.name in switches)
            kind = "vSwitch · VTEP" if self.overlay else "vSwitch"
            segments = ("VNI " if self.overlay else "VLAN trunk ") + (carried or "none")
            box.node(vswitch, _label(kind, small=(segments,)), fillcolor="#e2e8f0",
                     color="#334155", shape="box", style="filled")

    def router_instance(self, box, router, hv: str, vms, vswitch: str):
        node = f"rt_{router.name}_{hv}"
        self.ids[f"{router.name}@{hv}"] = node
        box.node(node, _label(f"{router.name} (distributed)", self.lifs(router),
                              small=(f"vMAC {self.topo.vmac}",)),
                 fillcolor="#fff7ed", color="#c2410c", shape="box", style="rounded,filled")
        routed = {lif.switch for lif in router.interfaces}
        for vm in vms:
            if vm.switch in routed:
                box.edge(f"vm_{vm.name}", node, color=self.colour[vm.switch][1],
                         style="dashed", penwidth="0.8")
        box.edge(node, vswitch, color="#c2410c", penwidth="0.8", style="dashed")

    def underlay(self):
        what = (f"underlay · physical switch\nVXLAN over {self.topo.underlay}" if self.overlay
                else "physical switch\n802.1Q trunks")
        self.graph.node(UNDERLAY, what, shape="box3d", style="filled", fillcolor="#cbd5e1",
                        color="#1e293b", fontsize="12")
        for hv in self.topo.hypervisors:
            self.graph.edge(f"hv_{hv.name}", UNDERLAY, color="#334155", penwidth="3")
        if not self.overlay:
            for router in self.topo.routers:
                self.ids[router.name] = f"rt_{router.name}"
                self.graph.node(f"rt_{router.name}", _label(f"{router.name} (router)",
                                                            self.lifs(router)),
                                fillcolor="#fff7ed", color="#c2410c")
                self.graph.edge(UNDERLAY, f"rt_{router.name}", color="#334155", penwidth="3")

    def logical_view(self):
        with self.graph.subgraph(name="cluster_logical") as box:
            box.attr(label="logical view", style="rounded,dashed", color="#64748b",
                     fontsize="13", margin="14")
            for sw in self.topo.switches:
                fill, line = self.colour[sw.name]
                box.node(f"ls_{sw.name}", _label(sw.name, self.segment(sw), str(sw.subnet)),
                         fillcolor=fill, color=line, shape="box")
            _row(box, [f"ls_{sw.name}" for sw in self.topo.switches])
            for router in self.topo.routers:
                kind = "distributed router" if self.overlay else "router"
                box.node(f"lr_{router.name}", _label(router.name, small=(kind,)),
                         fillcolor="#fff7ed", color="#c2410c", shape="box")
                for lif in router.interfaces:
                    box.edge(f"lr_{router.name}", f"ls_{lif.switch}", label=f" {lif.ip}",
                             color=self.colour[lif.switch][1], penwidth="1.5")

    def walk(self, path: list[str]):
        for hop in path:
            if hop not in self.ids:
                _unknown("path id", hop, sorted(self.ids))
        for step, (a, b) in enumerate(zip(path, path[1:]), start=1):
            # xlabel, constraint=false, weight=0: drawn on top, the layout stays as it was
            self.graph.edge(self.ids[a], self.ids[b], xlabel=_badge(step), color=WALK,
                            penwidth="3", arrowhead="normal", constraint="false", weight="0",
                            fontsize="14")


def _row(graph, nodes: list[str]) -> None:
    """Keep nodes on one rank, left to right in this order (dot would pick its own)."""
    with graph.subgraph() as row:
        row.attr(rank="same")
        for left, right in zip(nodes, nodes[1:]):
            row.edge(left, right, style="invis")


def _badge(step: int) -> str:
    """The walk's step number: white on red, so it stays readable over the lines."""
    return (f'<<table border="0" cellpadding="2" bgcolor="{WALK}" style="rounded"><tr><td>'
            f'<font color="white"><b>{step}</b></font></td></tr></table>>')


def _unknown(what: str, name: str, known) -> None:
    raise ValueError(f"unknown {what} {name!r} (known: {', '.join(known)})")
