"""`packetwalk demo`: the seed, for real. The physical baseline first (VLANs, one central
router), then the NSX-style overlay (VXLAN, ARP suppression, distributed router): the same
VMs, the same pings, the packet walks, the controller's tables, and the underlay switch's
MAC table next to the physical one's: the seed's closing claim, measured."""
from __future__ import annotations

import json
from pathlib import Path

from mininet_topos.checks import run_checks
from mininet_topos.lab import Lab
from mininet_topos.topology import load_topology

TOPOLOGIES = Path(__file__).resolve().parent.parent / "mininet_topos"
# The seed's paths: same switch across hosts, routed across hosts, routed on one host.
PATHS = [("vm1", "vm2", "icmp", "same logical switch, across hypervisors"),
         ("vm1", "vm3", "icmp", "routed, across hypervisors"),
         ("vm1", "vm4", "icmp", "routed, on one hypervisor"),
         ("vm1", "vm2", "arp", "ARP for a VM on the same switch")]
OVERLAY_CHECKS = ["underlay", "pingall", "arp-suppression", "routing", "underlay-macs"]
PHYSICAL_CHECKS = ["pingall", "routing", "underlay-macs"]


def run(progress, out_dir: Path | None, keep: bool = False) -> dict:
    from packetwalk.diagram import render
    from packetwalk.trace import RunningLab, walk
    result = {"physical": {}, "overlay": {}}
    for kind, topo_file, checks in (("physical", "physical.yaml", PHYSICAL_CHECKS),
                                    ("overlay", "seed.yaml", OVERLAY_CHECKS)):
        topo = load_topology(TOPOLOGIES / topo_file)
        lab = Lab(topo, progress=progress)
        lab.start()
        try:
            progress(f"{kind}: running checks {', '.join(checks)}")
            r = result[kind] = run_checks(lab, checks)
            r["walks"] = []
            running = RunningLab(lab.rundir)
            for src, dst, proto, what in PATHS:
                progress(f"{kind}: packet walk {src} -> {dst} ({proto})")
                w = walk(running, src, dst, proto)
                entry = {"path_kind": what, **w.to_dict(), "text": w.text()}
                if kind == "overlay":
                    entry["steps_match_flows"] = _steps_match_flows(lab, w)
                if out_dir:
                    out_dir.mkdir(parents=True, exist_ok=True)
                    picture = out_dir / f"{kind}-{src}-{dst}-{proto}.svg"
                    render(topo, picture, path=w.path, placement=lab.placement)
                    entry["picture"] = str(picture)
                r["walks"].append(entry)
            if kind == "overlay":
                r["controller"] = _tables(lab.controller_state())
        except BaseException:
            lab.stop()
            raise
        if kind == "overlay" and keep:
            result["kept"] = lab            # the caller stops it when its CLI exits
        else:
            lab.stop()
    result["ok"] = all(_ok(result[k]) for k in ("physical", "overlay"))
    return result


def _ok(r: dict) -> bool:
    walks = r.get("walks", [])
    return bool(r.get("ok")) and all(w["delivered"] and w.get("steps_match_flows", True) for w in walks)


def _steps_match_flows(lab, w) -> bool:
    """Every step that names a flow names one that `ovs-ofctl dump-flows` shows there."""
    dumps = {}
    for s in w.steps:
        if s.cookie:
            if s.where not in dumps:
                dumps[s.where] = lab.hv(s.where).ovs.sh("ovs-ofctl -O OpenFlow13 dump-flows br-int")
            if f"cookie={s.cookie}," not in dumps[s.where]:
                return False
    return True


def _tables(state: dict) -> dict:
    return {"vteps": state.get("vteps", {}), "arp_table": state.get("arp_table", {}),
            "mac_table": {h: {p: a for p, a in v.get("attachments", {}).items()}
                          for h, v in state.get("hypervisors", {}).items()}}


def report(result: dict) -> str:
    """The demo for a person: walks, tables, and the two networks side by side."""
    o, p = result["overlay"], result["physical"]
    lines = ["", "=" * 78, "packetwalk demo: the seed's network, physical vs NSX-style overlay", "=" * 78]
    for net, r in (("PHYSICAL BASELINE (VLANs, one central router)", p), ("NSX-STYLE OVERLAY (VXLAN, DLR)", o)):
        lines += ["", f"--- {net} ---"]
        for w in r.get("walks", []):
            lines += ["", f"[{w['path_kind']}]", w["text"]]
            if w.get("picture"):
                lines.append(f"  picture: {w['picture']}")
    c = o.get("controller", {})
    lines += ["", "--- the controller's tables (overlay) ---", "VTEP table (VNI: hypervisors):"]
    lines += [f"  {vni}: {', '.join(hvs)}" for vni, hvs in c.get("vteps", {}).items()]
    lines.append("ARP table (VNI: IP -> MAC, source):")
    for vni, table in c.get("arp_table", {}).items():
        lines += [f"  {vni}: {ip} -> {b['mac']} ({b['source']})" for ip, b in table.items()]
    lines.append("MAC table (hypervisor: port -> VM, MAC, VNI):")
    for hv, ports in c.get("mac_table", {}).items():
        lines += [f"  {hv}: {port} -> {a['vm']}, {a['mac']}, VNI {a['vni']}" for port, a in ports.items()]
    lines += ["", "--- side by side ---", f"{'':50}{'physical':>10}{'overlay':>10}"]
    def fig(r, *keys):
        v = r.get("checks", {})
        for k in keys:
            v = v.get(k, {}) if isinstance(v, dict) else {}
        return "-" if v in ({}, None) else str(v)
    rows = [("routed ping, one host: packets on the wire", ("routing", "same_host", "underlay_packets")),
            ("routed ping, across hosts: packets on the wire", ("routing", "cross_host", "underlay_packets")),
            ("TTL the receiver sees", ("routing", "cross_host", "ttl_at_receiver")),
            ("MACs the physical switch learned", ("underlay-macs", "learned")),
            ("... of which VM MACs", ("underlay-macs", "vm_macs_seen"))]
    lines += [f"{label:50}{fig(p, *keys):>10}{fig(o, *keys):>10}" for label, keys in rows]
    for name, r in (("physical", p), ("overlay", o)):
        table = r.get("checks", {}).get("underlay-macs", {}).get("mac_table", {})
        lines.append(f"{name} switch MAC table: " + ", ".join(f"{m} ({w})" for m, w in table.items()))
    lines += ["", "checks: " + ", ".join(f"{net}/{n}={'PASS' if c['ok'] else 'FAIL'}"
                                       for net, r in (("physical", p), ("overlay", o))
                                       for n, c in r.get("checks", {}).items()),
              f"RESULT: {'PASS' if result['ok'] else 'FAIL'}"]
    return "\n".join(lines)


def as_json(result: dict) -> str:
    clean = {k: v for k, v in result.items() if k != "kept"}
    return json.dumps(clean, indent=2, default=str)
