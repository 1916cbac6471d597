"""What the physical network sees: its switch's MAC table (the seed's "couple of orders of
magnitude") and ARP on the wire, overlay vs the physical baseline (the same VMs on VLANs
with one central router)."""
from __future__ import annotations

import subprocess

from mininet_topos import checks
from mininet_topos.lab import UNDERLAY, LabError
from packetwalk.bench import figure, labs, not_measured, ratio


def _every_vm_talks(lab) -> None:
    """Each VM pings one VM of its own switch and one of the other switch, both on another
    hypervisor where there is one: every VM's frames cross the underlay, switched and routed."""
    vms, pairs = lab.topo.vms, []
    for a in vms:
        for same in (True, False):
            b = next((b for b in vms if b is not a and (b.switch == a.switch) == same
                      and lab.placement[b.name] != lab.placement[a.name]), None) \
                or next((b for b in vms if b is not a and (b.switch == a.switch) == same), None)
            if b is not None:
                pairs.append((a.name, b.name))
    checks.ping_pairs(lab, pairs)


def underlay_table(quick: bool, progress) -> dict:
    """MACs the underlay switch learned after every VM has talked, for 2 hypervisors with
    2..64 VMs between them. Target: the overlay's switch learns the VTEPs only."""
    sizes = [(2, 2)] if quick else [(2, 1), (2, 4), (2, 16), (2, 32)]
    figs = {}
    for h, v in sizes:
        at, size = {"hypervisors": h, "vms": h * v}, f"{h}x{v}"
        try:        # physical first: the order that lets the next scenarios reuse the lab
            seen = {kind: _mac_table(h, v, kind, progress) for kind in ("physical", "overlay")}
        except LabError as e:
            figs.update(not_measured(f"underlay_macs@{size}", "MACs", at, e))
            continue
        (o_all, o_vms, o_other), (p_all, p_vms, p_other) = seen["overlay"], seen["physical"]
        notes = "; ".join(f"{k} also learned {', '.join(seen[k][2])}" for k in seen if seen[k][2])
        figs[f"underlay_macs@{size}"] = figure(o_all, "MACs", baseline=p_all, baseline_of="physical",
                                               target=("==", h), at=at, note=notes or None)
        figs[f"vm_macs_on_underlay@{size}"] = figure(o_vms, "MACs", baseline=p_vms, baseline_of="physical",
                                                     target=("==", 0), at=at)
        figs[f"table_ratio@{size}"] = figure(ratio(p_all, o_all), "x", at=at,
                                             note="physical switch's MAC table / overlay's")
    return figs


def _mac_table(h: int, v: int, kind: str, progress) -> tuple[int, int, list[str]]:
    """(MACs learned, of which VMs', what else) after every VM of an h x v lab has talked."""
    with labs.lab(labs.grid(h, v, kind), progress) as lab:
        progress(f"{h}x{v} {kind}: every VM pings across the underlay")
        # forget what the lab's start taught the switch (a hypervisor's uplink may have
        # spoken once before its IPv6 was off): the table is what the VMs' traffic teaches
        subprocess.run(["bridge", "fdb", "flush", "dev", UNDERLAY, "dynamic"], check=True)
        _every_vm_talks(lab)
        table = checks.underlay_mac_table(lab)
    others = sorted(w for w in table.values() if not w.startswith(("VM ", "router ")) and "VTEP" not in w)
    return len(table), sum(w.startswith("VM ") for w in table.values()), others


def _arp_on_the_wire(lab) -> dict:
    """All-pairs ping with cold ARP caches, ARP frames counted on the underlay (the check)."""
    r = checks.arp_suppression(lab)
    return {"frames": r["underlay_arp_frames"], "pings": r["pings"], "failed": r["pings"] - r["replies"]}


def underlay_arp(quick: bool, progress) -> dict:
    """ARP frames on the underlay (bare and inside VXLAN) during an all-pairs ping with cold
    ARP caches: suppression on (target 0), off (flood and learn), and the physical baseline."""
    from packetwalk.bench import settings
    sizes = [(2, 2)] if quick else [(2, 2), (4, 4)]
    figs = {}
    for h, v in sizes:
        size, at = f"{h}x{v}", {"hypervisors": h, "vms": h * v}
        try:
            with labs.lab(labs.grid(h, v), progress) as lab:
                progress(f"{size} overlay, ARP suppression on: all-pairs ping, cold ARP caches")
                on = _arp_on_the_wire(lab)
                progress(f"{size} overlay, ARP suppression off (flood and learn)")
                with settings.arp_suppression_off(lab):
                    off = _arp_on_the_wire(lab)
            with labs.lab(labs.grid(h, v, "physical"), progress) as lab:
                progress(f"{size} physical: all-pairs ping, cold ARP caches")
                phys = _arp_on_the_wire(lab)
        except LabError as e:
            figs.update(not_measured(f"arp_frames_suppression_on@{size}", "frames", at, e))
            continue
        figs[f"arp_frames_suppression_on@{size}"] = figure(on["frames"], "frames", baseline=phys["frames"],
                                                           baseline_of="physical", target=("==", 0), at=at)
        figs[f"arp_frames_suppression_off@{size}"] = figure(off["frames"], "frames", baseline=phys["frames"],
                                                            baseline_of="physical", at=at)
        figs[f"pings_failed@{size}"] = figure(on["failed"] + off["failed"], f"of {on['pings'] + off['pings']}",
                                              baseline=phys["failed"], baseline_of="physical", target=("==", 0),
                                              at=at, note="pings of these runs with no reply (suppression on and off)")
    return figs
