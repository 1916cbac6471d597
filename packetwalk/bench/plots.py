"""`packetwalk bench --plot DIR`: the figures people would rather see than read, as PNGs.

    underlay-macs.png     MACs the underlay switch learned vs VMs, overlay vs physical (log scale)
    flows.png             flows per hypervisor vs VMs (growing VMs, growing hypervisors), OVN beside
    attach-latency.png    port creation to first reply: every attach, per size
    scale.png             the controller at scale: cold start, attach, CPU per attach, detach, memory, flows
    scale-cluster.png     1 against 3 controllers at scale: cold start, failover, CPU, busiest share
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)


def figures(result: dict, scenario: str, metric: str) -> list[tuple[dict, dict]]:
    """(at, figure) for every measured figure `metric@...` of `scenario`, in the order run."""
    found = result.get("scenarios", {}).get(scenario, {}).get("figures", {})
    return [(f.get("at", {}), f) for name, f in found.items()
            if name.split("@")[0] == metric and f.get("value") is not None]


def write(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for draw in (_underlay_macs, _flows, _attach, _scale, _scale_cluster):
        fig = draw(result)
        if fig is not None:
            path = out / f"{draw.__name__.strip('_').replace('_', '-')}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
    return written


def _underlay_macs(result):
    rows = sorted(figures(result, "underlay-table", "underlay_macs"), key=lambda r: r[0].get("vms", 0))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    vms = [at["vms"] for at, _ in rows]
    ax.plot(vms, [f["baseline"] for _, f in rows], "s-", color="tab:red", label="physical baseline (VLANs)")
    ax.plot(vms, [f["value"] for _, f in rows], "o-", color="tab:blue", label="overlay (VXLAN)")
    for x, (_, f) in zip(vms, rows):
        ax.annotate(str(f["baseline"]), (x, f["baseline"]), textcoords="offset points", xytext=(0, 6), ha="center")
        ax.annotate(str(f["value"]), (x, f["value"]), textcoords="offset points", xytext=(0, -14), ha="center")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(vms, [str(v) for v in vms])
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(1, max(f["baseline"] for _, f in rows) * 2)
    return _label(fig, ax, f"VMs (on {rows[0][0].get('hypervisors', 2)} hypervisors)",
                  "MACs the underlay switch learned", "The physical switch's MAC table")


def _label(fig, ax, x: str, y: str, title: str):
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return fig


def _flows(result):
    rows = figures(result, "flow-footprint", "flows_per_hypervisor")
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    by_hv = sorted((at["vms"], f["value"]) for at, f in rows if at["hypervisors"] == 8)
    by_vms = sorted((at["vms"], f["value"]) for at, f in rows if at["vms"] == 4 * at["hypervisors"])
    ax.plot(*zip(*by_hv), "o-", label="8 hypervisors, more VMs each")
    ax.plot(*zip(*by_vms), "s-", label="4 VMs each, more hypervisors")
    tenants = sorted((at["vms"], f["value"]) for at, f in figures(result, "flow-footprint", "flows_beside_tenants"))
    if tenants:
        ax.plot(*zip(*tenants), "^-", color="tab:green", label="more tenants beside hv1's (not reachable)")
    ref = sorted((at["vms"], f["baseline"], f["value"], at) for at, f in rows if f.get("baseline"))
    if ref:
        ax.plot([r[0] for r in ref], [r[1] for r in ref], "x--", color="grey", label="reference OVN 23.03 lab")
        ax.plot([r[0] for r in ref], [r[2] for r in ref], "D", color="black", fillstyle="none",
                label="ours at the reference's sizes")
        for x, b, _, at in ref:
            ax.annotate(f"{at['hypervisors']}x{at['vms'] // at['hypervisors']}", (x, b),
                        textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    _label(fig, ax, "VMs in the network", "flows on one hypervisor (hv1)",
           "Flows per hypervisor (the controller's model; 2x2 checked in a lab)")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    return fig


def _attach(result):
    reply = [(at, f) for at, f in figures(result, "convergence", "attach_to_first_reply_p95_ms") if f.get("samples")]
    if not reply:
        return None
    realized = {(at["hypervisors"], at["vms"]): f["samples"]
                for at, f in figures(result, "convergence", "attach_to_realized_p50_ms") if f.get("samples")}
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (at, f) in enumerate(reply):
        size = (at["hypervisors"], at["vms"])
        groups = [("first reply", f["samples"], "tab:blue", 3 * i + 1)]
        if size in realized:
            groups.append(("realized", realized[size], "tab:green", 3 * i + 2))
        for label, samples, color, x in groups:
            ax.boxplot([samples], positions=[x], widths=0.6, showfliers=False)
            ax.scatter([x] * len(samples), samples, s=12, alpha=0.6, color=color, zorder=3,
                       label=label if i == 0 else None)
        if f.get("baseline"):
            ax.scatter([3 * i + 1], [f["baseline"]], marker="x", s=60, color="grey", zorder=4,
                       label="reference OVN 23.03 lab (first reply)" if i == 0 else None)
    ax.set_xticks([3 * i + 1.5 for i in range(len(reply))],
                  [f"{at['hypervisors']}x{at['vms'] // at['hypervisors']}" for at, _ in reply])
    ax.set_xlim(0, 3 * len(reply))
    return _label(fig, ax, "lab size (hypervisors x VMs each)", "ms from the port's creation",
                  "Attach: to the first routed ping reply across hypervisors, and to realized")


# the scale scenario's panels: (title, [(metric, label)], the metric whose target is drawn)
SCALE_PANELS = (
    ("from cold to programmed (s)", [("cold_s", "cold start")], "cold_s"),
    ("one attach (ms)", [("attach_ms", "on the switches, p50"), ("attach_p95_ms", "on the switches, p95"),
                         ("attach_realized_ms", "realized (API), p50")], "attach_ms"),
    ("controller CPU per attach (ms)", [("cpu_per_attach_ms", "p50 of the batches (bars: all)")],
     "cpu_per_attach_ms"),
    ("detach (ms)", [("detach_ms", "to realized (the move hold begins)"),
                     ("detach_after_hold_ms", "after the 5 s hold, to cleared")], None),
    ("controller CPU from cold (s)", [("cpu_cold_s", "")], None),
    ("controller peak memory (MB)", [("peak_memory_mb", "")], None),
    ("flows per hypervisor", [("flows_per_hv", "")], None),
    ("flow-mods per attach", [("flow_mods_per_attach", "")], None),
)


def _scale(result):
    """One panel per SCALE_PANELS entry that has figures at two sizes or more; hypervisors on
    the x axis; a target as a dashed line; CPU per attach with every batch as a bar."""
    def rows(metric):
        return sorted(((at["hypervisors"], f) for at, f in figures(result, "scale", metric)
                       if isinstance(at.get("hypervisors"), (int, float))), key=lambda r: r[0])
    panels = [(title, [(rows(m), label) for m, label in lines], rows(target) if target else [])
              for title, lines, target in SCALE_PANELS if len(rows(lines[0][0])) > 1]
    if not panels:
        return None
    cols = min(3, len(panels))
    fig, axes = plt.subplots(-(-len(panels) // cols), cols, figsize=(4.5 * cols, 3.4 * -(-len(panels) // cols)),
                             squeeze=False)
    for ax, (title, lines, target) in zip(axes.flat, panels):
        for line, label in lines:
            if not line:
                continue
            usable = [(h, f) for h, f in line if not str(f.get("note", "")).startswith("NOT USABLE")]
            ax.plot([h for h, _ in usable], [f["value"] for _, f in usable], "o-", label=label or None)
            noisy = [h for h, f in line if (h, f) not in usable]          # figures the bench could not measure
            if noisy:
                ax.plot(noisy, [0] * len(noisy), "x", color="tab:red", clip_on=False, label="not usable (see the note)")
            for h, f in line:
                if f.get("samples") and "batches" in (label or "") and (h, f) in usable:
                    ax.vlines(h, min(f["samples"]), max(f["samples"]), color="tab:blue", alpha=0.5, lw=4)
        goal = next((f["target"] for _, f in target if f.get("target")), None)
        if goal:
            ax.axhline(float(goal.split()[-1]), color="grey", linestyle="--", label=f"target {goal} (at 200 x 5,000)")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("hypervisors")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if any(label for _, label in lines) or goal:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("The controller at scale (emulated hypervisors, real OpenFlow and OVSDB)")
    fig.tight_layout()
    return fig


CLUSTER_PANELS = (("cold_s", "from cold to programmed (s)"), ("failover_s", "failover: kill -9 to converged (s)"),
                  ("cpu_cold_s", "controllers' CPU from cold (s)"), ("busiest_controller_hvs", "busiest controller's "
                                                                      "hypervisors"))


def _scale_cluster(result):
    """One panel per metric, one line per controller count, hypervisors on the x axis; a
    figure's target as a dashed line."""
    rows = {m: figures(result, "scale-cluster", m) for m, _ in CLUSTER_PANELS}
    if not any(len(r) > 1 for r in rows.values()):
        return None
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.8), squeeze=False)
    for ax, (metric, title) in zip(axes.flat, CLUSTER_PANELS):
        for n in sorted({at.get("controllers") for at, _ in rows[metric]}):
            line = sorted((at["hypervisors"], f["value"]) for at, f in rows[metric] if at.get("controllers") == n)
            ax.plot(*zip(*line), "o-", label=f"{n} controller{'s' if n > 1 else ''}")
        target = next((f["target"] for _, f in rows[metric] if f.get("target")), None)
        if target:
            ax.axhline(float(target.split()[-1]), color="grey", linestyle="--", label=f"target {target}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("hypervisors")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("The controller at scale: one controller against three on a Raft database")
    fig.tight_layout()
    return fig
