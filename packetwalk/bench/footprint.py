"""flow-footprint: the flows each hypervisor holds and the flow-mods one attach costs, as VMs
and hypervisors grow; fitted growth per VM and per hypervisor (least squares).

The sizes come from the controller's own pure model (controller.pipeline.hypervisor_flows
on a synthetic Network: the same function the running controller calls), and the smallest
size is checked against a real lab (the flows its controller installed on br-int). Target:
a hypervisor's flows grow with the VMs it can reach, not with all VMs: shown with tenants
(each its own router and switches, on its own hypervisors) added beside hypervisor hv1's.
"""
from __future__ import annotations

import time

import numpy

from controller.flows import diff
from controller.intent import parse_intent
from controller.model import Hypervisor, Network
from controller.pipeline import hypervisor_flows
from mininet_topos.topology import intent_dict, parse_topology
from mininet_topos.lab import LabError
from packetwalk.bench import figure, labs, not_measured

REFERENCE = "reference OVN 23.03 lab"
OVN_FLOWS = {(2, 2): 446, (4, 4): 508, (8, 4): 580}


def tenants(count: int, hypervisors: int, vms_per_hypervisor: int) -> dict:
    """`count` copies of grid(hypervisors, vms_per_hypervisor), each tenant on its own
    hypervisors with its own switches (VNIs) and router, all the same addresses."""
    spec = {"name": f"t{count}", "hypervisors": [], "logical_switches": [], "logical_routers": [], "vms": []}
    for t in range(count):
        g = labs.grid(hypervisors, vms_per_hypervisor)
        hv = {h["name"]: f"hv{t * hypervisors + i + 1}" for i, h in enumerate(g["hypervisors"])}
        sw = {s["name"]: f"{s['name']}{t}" for s in g["logical_switches"]}
        spec["hypervisors"] += [{"name": n} for n in hv.values()]
        spec["logical_switches"] += [{**s, "name": sw[s["name"]], "vni": s["vni"] + 10 * t}
                                     for s in g["logical_switches"]]
        spec["logical_routers"] += [{"name": f"r{t}", "interfaces": [
            {**i, "switch": sw[i["switch"]]} for i in g["logical_routers"][0]["interfaces"]]}]
        spec["vms"] += [{**v, "name": f"t{t}{v['name']}", "hypervisor": hv[v["hypervisor"]],
                         "switch": sw[v["switch"]]} for v in g["vms"]]
    return spec


def network(spec: dict, leave_out: str | None = None) -> Network:
    """The controller's model of `spec` (its intent as the lab loads it: a logical port per VM)
    with every VM's interface on its hypervisor's br-int and every wanted tunnel made; VM
    `leave_out`'s port exists but is not attached yet."""
    topo = parse_topology(spec)
    net = Network(parse_intent(intent_dict(topo)))
    for h in topo.hypervisors:
        hv = net.hypervisors[h.name] = Hypervisor(h.name, str(h.mgmt_ip), str(h.vtep_ip))
        net.set_interfaces(hv, {vm.name: (i, vm.name) for i, vm in enumerate(topo.vms_on(h.name), start=1)
                                if vm.name != leave_out})
    ofport = {h.name: 1000 + i for i, h in enumerate(topo.hypervisors)}
    for hv in net.hypervisors.values():
        hv.tunnels = {remote: ofport[remote] for remote in net.wanted_tunnels(hv)}
    return net


def flows_per_hypervisor(spec: dict, hv: str = "hv1") -> int:
    net = network(spec)
    return len({f.cookie for f in hypervisor_flows(net, net.hypervisors[hv])})


def flow_mods_per_attach(spec: dict) -> int:
    """Flow-mods, all hypervisors together, from a network where the last VM's logical port
    exists but is not attached to one where it is (what the attach costs)."""
    vm = spec["vms"][-1]["name"]
    before, after = network(spec, leave_out=vm), network(spec)
    total = 0
    for name, hv in after.hypervisors.items():
        installed = {f.cookie for f in hypervisor_flows(before, before.hypervisors[name])}
        d = diff(hypervisor_flows(after, hv), installed)
        total += len(d.add) + len(d.delete)
    return total


def fit(rows: list[tuple[float, ...]], ys: list[float]) -> list[float]:
    """Least-squares coefficients of ys = c0 + c1 * rows[i][0] + c2 * rows[i][1] + ..."""
    a = numpy.array([[1.0, *r] for r in rows])
    return [round(float(c), 2) for c in numpy.linalg.lstsq(a, numpy.array(ys, dtype=float), rcond=None)[0]]


SETTLE_S = 15.0   # s: how long a lab may take to drop a detached port's held flows


def _lab_flows(quick: bool, progress) -> dict:
    """The smallest size in a real lab: flows its controller installed on hv1, vs the model."""
    spec = labs.grid(2, 2)
    model = flows_per_hypervisor(spec)
    with labs.lab(spec, progress) as lab:
        progress("2x2: the flows the lab's controller installed, against the model's")
        # a scenario before this one may have just unplugged a VM: its old place is kept for a
        # move's hold (a few seconds) before the lab is back at the model's steady state
        deadline = time.monotonic() + SETTLE_S
        while True:
            installed = lab.controller_state()["hypervisors"]["hv1"]["flows"]
            if installed == model or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    return {"lab_flows_hv1@2x2": figure(installed, "flows", baseline=model, baseline_of="pure model",
                                        target=("==", model), at={"hypervisors": 2, "vms": 4},
                                        note=f"the lab's br-int holds what the model computes (once settled, "
                                             f"within {SETTLE_S:.0f} s)")}


def run(quick: bool, progress) -> dict:
    by_hypervisors = [2, 4, 8] if quick else [2, 4, 8, 16, 32, 64]
    by_vms = [1, 2, 4] if quick else [1, 2, 4, 8, 16, 32]
    sizes = sorted({(h, 4) for h in by_hypervisors} | {(8, v) for v in by_vms} | set(OVN_FLOWS))
    figs, rows, ys, mods = {}, [], [], []
    for h, v in sizes:
        progress(f"{h}x{v}: the model's flows per hypervisor and flow-mods per attach")
        spec = labs.grid(h, v)
        n = flows_per_hypervisor(spec)
        rows.append((h * v, h))
        ys.append(n)
        at, ref = {"hypervisors": h, "vms": h * v}, OVN_FLOWS.get((h, v))
        figs[f"flows_per_hypervisor@{h}x{v}"] = figure(n, "flows", baseline=ref,
                                                       baseline_of=REFERENCE if ref else None, at=at)
        mods.append(flow_mods_per_attach(spec))
        figs[f"flow_mods_per_attach@{h}x{v}"] = figure(mods[-1], "flow-mods", at=at)
    _, per_vm, per_hv = fit(rows, ys)
    figs["fitted_flows_per_vm"] = figure(per_vm, "flows", note="least squares: flows = a + b * VMs + c * hypervisors")
    figs["fitted_flows_per_hypervisor"] = figure(per_hv, "flows", note="c in the same fit")
    _, mods_per_vm, mods_per_hv = fit(rows, mods)
    figs["fitted_flow_mods_per_attach_per_vm"] = figure(mods_per_vm, "flow-mods", note="the same fit of flow-mods per attach")
    figs["fitted_flow_mods_per_attach_per_hypervisor"] = figure(mods_per_hv, "flow-mods", note="c in that fit")
    counts = [1, 2, 4] if quick else [1, 2, 4, 8, 16]
    progress(f"tenants beside hv1's: {counts} tenants of 2x4 each")
    reach = [flows_per_hypervisor(tenants(t, 2, 4)) for t in counts]
    for t, n in zip(counts, reach):
        figs[f"flows_beside_tenants@{t}t"] = figure(n, "flows", at={"hypervisors": 2 * t, "vms": 8 * t},
                                                    note=f"hv1 in tenant 1 of {t} (2 hypervisors x 4 VMs each)")
    _, per_unreachable = fit([(8 * t,) for t in counts], reach)
    figs["flows_per_unreachable_vm"] = figure(per_unreachable, "flows", target=("==", 0),
                                              note=f"hv1's flows as tenants of 8 VMs are added elsewhere: {reach}")
    try:
        figs.update(_lab_flows(quick, progress))
    except LabError as e:
        figs.update(not_measured("lab_flows_hv1@2x2", "flows", {"hypervisors": 2, "vms": 4}, e))
    return figs
