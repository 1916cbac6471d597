"""What one VM attach costs the controller, in the pure model (no switch, no I/O).

`measure(hypervisors, vms)` builds a network of `vms` logical ports on 10 logical switches
joined by one distributed router (so every hypervisor reaches every VM), spread round-robin
over `hypervisors`, with full-mesh tunnels; programs it from cold; then attaches and
detaches a new VM port a few times and reports, per attach: flows recomputed, flow-mods
planned, and CPU ms (the engine, the reconciler, and rendering the plan's OpenFlow messages).
`full=True` measures the full recompute instead (every hypervisor's flows, then a diff):
what the controller did before the incremental engine. For `packetwalk bench` (issue 9's
scale scenario) to call; `python -m packetwalk.enginebench 50x500 100x1000 [--full]` prints it.
"""
from __future__ import annotations

import json
import sys
import time

SWITCHES = 10


def build(hypervisors: int, vms: int):
    from controller.intent import parse_intent
    from controller.model import Hypervisor, Network
    switches = [{"name": f"ls{s}", "vni": 5000 + s, "subnet": f"10.{s // 200}.{s % 200}.0/24" if vms <= 250 * SWITCHES
                 else f"10.{s}.0.0/16"} for s in range(SWITCHES)]
    ports = []
    for i in range(vms):
        s = i % SWITCHES
        host = i // SWITCHES + 10
        ip = f"10.{s // 200}.{s % 200}.{host}" if vms <= 250 * SWITCHES else f"10.{s}.{host // 250}.{host % 250 + 2}"
        ports.append({"name": f"vm{i}", "switch": f"ls{s}", "mac": _mac(i), "ips": [ip]})
    ports.append({"name": "new", "switch": "ls0", "mac": _mac(vms), "learn": True})
    router = {"name": "dlr", "interfaces": [{"switch": sw["name"], "ip": _gateway(sw["subnet"])} for sw in switches]}
    net = Network(parse_intent({"logical_switches": switches, "logical_ports": ports, "logical_routers": [router]}))
    names = [f"hv{h}" for h in range(hypervisors)]
    for h, name in enumerate(names):
        net.hypervisors[name] = Hypervisor(name, f"169.254.{h // 250}.{h % 250 + 1}", f"192.168.{h // 250}.{h % 250 + 1}")
    for i in range(vms):
        hv = net.hypervisors[names[i % hypervisors]]
        hv.interfaces[f"tap{i}"] = (len(hv.interfaces) + 1, f"vm{i}")
    for name in names:
        hv = net.hypervisors[name]
        net.set_interfaces(hv, dict(hv.interfaces))
        h = names.index(name)    # each hypervisor numbers its tunnel ports its own way, as OVS would
        hv.tunnels = {o: 1000 + (k - h) % hypervisors for k, o in enumerate(names) if o != name}
    return net


def _mac(i: int) -> str:
    return "00:50:56:%02x:%02x:%02x" % (i >> 16 & 0xFF, i >> 8 & 0xFF, i & 0xFF)


def _gateway(subnet: str) -> str:
    base = subnet.split("/")[0].rsplit(".", 1)[0]
    return f"{base}.1"


def measure(hypervisors: int, vms: int, attaches: int = 5, full: bool = False) -> dict:
    net = build(hypervisors, vms)
    run = _full(net) if full else _incremental(net)
    cold = next(run)
    hv0, runs = net.hypervisors["hv0"], []
    for k in range(attaches * 2):
        attach = k % 2 == 0
        interfaces = {**hv0.interfaces, "tapnew": (9999, "new")} if attach else \
            {n: i for n, i in hv0.interfaces.items() if n != "tapnew"}
        t0 = time.process_time()
        net.set_interfaces(hv0, interfaces)
        figures = next(run)
        figures["cpu_ms"] = round((time.process_time() - t0) * 1000, 2)
        if attach:
            runs.append(figures)
    mid = sorted(runs, key=lambda r: r["cpu_ms"])[len(runs) // 2]
    return {"hypervisors": hypervisors, "vms": vms, "how": "full recompute" if full else "incremental",
            "flows": sum(len(f) for f in cold["flows"]), "cold_cpu_s": cold["cpu_s"], "attach_median": mid,
            "attaches": len(runs)}


def _full(net):
    """Before the engine: every hypervisor's flows recomputed, then diffed."""
    from controller.flows import diff
    from controller.pipeline import hypervisor_flows
    t0 = time.process_time()
    wanted = {n: hypervisor_flows(net, h) for n, h in net.hypervisors.items()}
    installed = {n: {f.cookie for f in flows} for n, flows in wanted.items()}
    yield {"cpu_s": round(time.process_time() - t0, 2), "flows": list(wanted.values())}
    while True:
        recomputed = mods = 0
        for name, hv in net.hypervisors.items():
            flows = hypervisor_flows(net, hv)
            recomputed += len(flows)
            d = diff(flows, installed[name])
            mods += len(d.add) + len(d.delete)
            installed[name] = (installed[name] - set(d.delete)) | {f.cookie for f in d.add}
        yield {"recomputed_flows": recomputed, "flow_mods": mods}


def _incremental(net):
    """The engine, the reconciler, and the plan rendered as OpenFlow bundles (serialized)."""
    from types import SimpleNamespace

    from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

    from controller import openflow
    from controller.engine import Engine
    from controller.reconcile import Reconciler
    dp = SimpleNamespace(ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser)
    t0 = time.process_time()
    engine, rec = Engine(net), Reconciler()
    engine.update()
    for name in net.hypervisors:
        rec.read(name, set(), engine.flows(name))
    rec.plan()
    yield {"cpu_s": round(time.process_time() - t0, 2), "flows": [engine.flows(n) for n in net.hypervisors]}
    while True:
        changes = engine.update()
        rec.feed(changes)
        plan = rec.plan()
        t1 = time.process_time()
        for stage in plan.stages if plan else ():
            for update in stage:
                for msg in openflow.bundle(dp, 1, openflow.update_messages(dp, update)):
                    msg.set_xid(1)
                    msg.serialize()
        yield {"recomputed_flows": changes.recomputed, "flow_mods": plan.flow_mods() if plan else 0,
               "hypervisors_touched": len(plan.hypervisors()) if plan else 0,
               "render_ms": round((time.process_time() - t1) * 1000, 2)}


def main(argv: list[str]) -> None:
    full = "--full" in argv
    for size in (a for a in argv if "x" in a):
        h, v = map(int, size.split("x"))
        print(json.dumps(measure(h, v, attaches=1 if full and h * v > 100_000 else 5, full=full)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
