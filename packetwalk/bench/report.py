"""Run scenarios and tell their figures: one JSON object, or a table per scenario with each
figure beside its baseline and its target."""
from __future__ import annotations

import datetime
import os
import platform
import time
import traceback

from packetwalk.bench import SCENARIOS, NotAvailable, labs, scenario


def machine() -> dict:
    """Where the figures were measured."""
    model = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem = next((int(line.split()[1]) // 1024 for line in _lines("/proc/meminfo")
                if line.startswith("MemTotal")), None)
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu": model, "memory_mb": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def run(names: list[str], quick: bool, progress) -> dict:
    """Every named scenario, in order; one scenario's error is reported and the rest run."""
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "quick": quick, "machine": machine(), "scenarios": {}}
    with labs.session(progress):
        for name in names:
            t0, load = time.monotonic(), os.getloadavg()[0]
            progress(f"{name}: running")
            if name in ("scale", "scale-cluster"):
                labs.release()          # it runs its own fleet of hypervisors: give it the machine
            try:
                figures = scenario(name)(quick, lambda m, n=name: progress(f"{n}: {m}"))
                entry = {"figures": figures}
            except NotAvailable as e:
                entry = {"not_available": str(e)}
            except Exception as e:           # one scenario's failure must not lose the others
                progress(f"{name}: failed: {e}")
                entry = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            entry["seconds"] = round(time.monotonic() - t0, 1)
            entry["load"] = [round(load, 1), round(os.getloadavg()[0], 1)]     # 1-minute load, before and after
            progress(f"{name}: done in {entry['seconds']} s")
            result["scenarios"][name] = entry
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["ok"] = all("error" not in s and ("figures" in s and s["figures"] or "not_available" in s)
                       for s in result["scenarios"].values())
    return result


def text(result: dict) -> str:
    m = result["machine"]
    lines = [f"packetwalk bench{' --quick' if result['quick'] else ''}: {result['date']}, "
             f"{m['cpus']} CPUs ({m['cpu']}), load {m['load_average']} before, "
             f"{result.get('load_average_after')} after"]
    for name, s in result["scenarios"].items():
        load = f", load {s['load'][0]:g} -> {s['load'][1]:g}" if s.get("load") else ""
        lines += ["", f"== {name} ({s['seconds']} s{load})"]
        if "not_available" in s:
            lines.append(f"   not available: {s['not_available']}")
            continue
        if "error" in s:
            lines.append(f"   FAILED: {s['error']}")
            continue
        rows = [("figure", "value", "baseline", "target", "")]
        for fname, f in s["figures"].items():
            base = "" if f.get("baseline") is None else f"{_num(f['baseline'])} ({f.get('baseline_of') or 'baseline'})"
            met = {True: "met", False: "MISSED", None: ""}[f.get("met")]
            value = "n/a" if f.get("value") is None else f"{_num(f['value'])} {f.get('unit', '')}".strip()
            rows.append((fname, value, base, f.get("target") or "", met))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            lines.append("   " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        notes = [f"   {n}: {f['note']}" for n, f in s["figures"].items() if f.get("note")]
        lines += ["   notes:"] + notes if notes else []
    lines += ["", f"RESULT: {'every scenario measured' if result['ok'] else 'some scenarios FAILED'}"]
    return "\n".join(lines)


def _num(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) and abs(x) < 100 else (f"{x:.0f}" if isinstance(x, float) else str(x))
