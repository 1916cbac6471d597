"""`packetwalk bench`: the seed's claims and the controller's cost, measured, beside their
baselines and targets. A benchmark measures and reports; it never fails on a time.

A scenario is a function `run(quick: bool, progress: Callable[[str], None]) -> dict`,
registered below by name. `quick` asks for small sizes (CI runs it for correctness: every
figure present and sane); `progress(text)` tells the person waiting what is happening.
It returns its figures, one entry per figure, named `metric` or `metric@size`:

    {
      "macs@2x64": {                 # "@size": the size it was measured at, if it has one
        "value": 2,                  # int | float | None  (None: not measured; "note" says why)
        "unit": "MACs",              # "s", "ms", "flows", "flow-mods", "packets", "Gbit/s", "%", "x", ""
        "baseline": 130,             # int | float | None: the figure to compare with ...
        "baseline_of": "physical",   # ... and what it is ("physical baseline", "central router",
                                     #     "reference OVN 23.03 lab", "veth ceiling", ...)
        "target": "== 2",            # str | None: "<= 0.7", ">= 1.2", "== 0", "< 10"
        "met": True,                 # bool | None: value against target (None: no target or no value)
        "at": {"hypervisors": 2, "vms": 128},   # optional: the size, numbers (plots use it)
        "note": "...",               # optional: what the figure is, or why it is missing
        "samples": [8.3, 11.9],      # optional: the measurements a p50/p95 came from (plots use them)
      },
      ...
    }

`figure()` below builds one entry (and works out "met"); a scenario may build the dicts
itself. Plots group figures by the metric (the name before "@") and put `at` on the x axis.
"""
from __future__ import annotations

import importlib
import operator

OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}

# name -> (module, function). Modules are imported when their scenario runs, so a missing
# one (the scale scenario lives in its own module) is reported as not available.
SCENARIOS = {
    "underlay-table": ("packetwalk.bench.underlay", "underlay_table"),
    "underlay-arp": ("packetwalk.bench.underlay", "underlay_arp"),
    "routing-path": ("packetwalk.bench.routing", "run"),
    "convergence": ("packetwalk.bench.convergence", "run"),
    "flow-footprint": ("packetwalk.bench.footprint", "run"),
    "lab-start": ("packetwalk.bench.labstart", "run"),
    "scale": ("packetwalk.bench_scale", "run"),
    "scale-cluster": ("packetwalk.bench_cluster", "run"),
    "throughput": ("packetwalk.bench.throughput", "run"),
}


MAX_HYPERVISORS: int | None = None     # `--max-hypervisors`: the scale scenarios' sizes up to this


def within_limit(sizes):
    """The (hypervisors, ...) sizes no larger than MAX_HYPERVISORS (all of them if unset)."""
    return [s for s in sizes if MAX_HYPERVISORS is None or s[0] <= MAX_HYPERVISORS]


class NotAvailable(Exception):
    """The scenario's module is not installed in this tree."""


def scenario(name: str):
    """The scenario's run function; NotAvailable if its module is missing."""
    module, function = SCENARIOS[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise NotAvailable(f"{module} is not in this tree") from None
        raise
    return getattr(mod, function)


def figure(value, unit: str = "", *, baseline=None, baseline_of: str | None = None,
           target: tuple[str, float] | None = None, at: dict | None = None, note: str | None = None,
           samples: list | None = None) -> dict:
    """One figure. `target` is (op, number), e.g. ("<=", 0.7); "met" is worked out from it."""
    met = None
    if target is not None and value is not None:
        met = bool(OPS[target[0]](value, target[1]))
    fig = {"value": value, "unit": unit, "baseline": baseline, "baseline_of": baseline_of,
           "target": f"{target[0]} {_num(target[1])}" if target else None, "met": met}
    if at:
        fig["at"] = at
    if note:
        fig["note"] = note
    if samples is not None:
        fig["samples"] = samples
    return fig


def not_measured(name: str, unit: str, at: dict | None, why: Exception) -> dict:
    """{name: a figure with no value}, saying why (a lab that did not come up, ...)."""
    return {name: figure(None, unit, at=at, note=f"not measured: {why}")}


def ratio(a, b):
    """a / b rounded, or None when either is missing or b is 0."""
    return round(a / b, 2) if a is not None and b else None


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)
