"""The scale bench's pure parts: the tenants' network it emulates, and its figures."""
from __future__ import annotations

from collections import Counter

from mininet_topos import readiness
from mininet_topos.topology import parse_topology
from packetwalk import bench_scale


def test_scale_topology_spreads_tenants_without_reaching_everything():
    topo = parse_topology(bench_scale.topology(200, 5000))
    assert len(topo.hypervisors) == 200 and len(topo.vms) == 5000 and len(topo.routers) == 50
    assert set(Counter(v.hypervisor for v in topo.vms).values()) == {25}
    exp = readiness.expect(topo, {v.name: v.hypervisor for v in topo.vms})
    tenants_of = {hv: {v.switch.split("s")[0] for v in topo.vms_on(hv)} for hv in exp.ports}
    assert set(map(len, tenants_of.values())) == {5}            # 5 tenants per hypervisor
    assert max(len(t) for t in exp.tunnels.values()) < 200 // 2  # far from a full mesh


def test_scale_figures_carry_their_targets_and_say_whether_met():
    r = {"hypervisors": 200, "vms": 5000, "cold_s": 12.5, "listen_s": 0.9, "intent_s": 2.0,
         "attach_ms": [80.0, 90.0, 70.0], "attach_realized_ms": [82.0, 91.0, 71.0], "realized_early": 0,
         "look_ms": 3.0, "detach_look_ms": 20.0, "plug_ms": 12.0, "touched": 20, "detach_ms": [30.0, 40.0, 35.0],
         "detach_realized_ms": [31.0, 41.0, 36.0], "detach_cleared_ms": [5600.0, 5700.0, 5650.0],
         "cold_cpu_s": 30.0, "db_cpu_s": 0.2, "cpu_per_attach_ms": 12.0, "cpu_per_attach_all_ms": [11.0, 12.0, 14.0],
         "cpu_batch": 20, "cpu_windows_s": [3, 3, 4], "idle_cpu_pct": 15.0, "db_cpu_per_attach_ms": 0.5,
         "cpu_uncertainty_ms": 1.5,
         "peak_mb": 900.0, "flows_per_hv_mean": 1300.0, "flows_per_hv_max": 1400, "flow_mods_per_attach": 27,
         "flow_mods_rounds": [27, 27, 29], "flows_changed_per_attach": 30}
    figs = bench_scale.figures(r, targets=True)
    assert figs["cold_s@200x5000"]["target"] == "< 10" and figs["cold_s@200x5000"]["met"] is False
    assert figs["attach_ms@200x5000"]["met"] is True and figs["cpu_per_attach_ms@200x5000"]["met"] is False
    assert figs["flows_per_hv@200x5000"]["target"] is None and figs["flows_per_hv@200x5000"]["at"]["vms"] == 5000
    small = bench_scale.figures(r | {"hypervisors": 4, "vms": 20}, targets=True)
    assert "the target is set for 200 x 5000" in small["attach_ms@4x20"]["note"]
    assert figs["attach_ms@200x5000"]["value"] == 80.0 and figs["attach_p95_ms@200x5000"]["value"] == 90.0
    assert figs["detach_after_hold_ms@200x5000"]["value"] == 650.0          # the 5 s move hold named, not counted
    assert "move hold" in figs["detach_ms@200x5000"]["note"]
    cpu_note = figs["cpu_per_attach_ms@200x5000"]["note"]
    assert "spread 3.00" in cpu_note and "+-1.5 ms" in cpu_note
    assert figs["cpu_per_attach_ms@200x5000"]["samples"] == [11.0, 12.0, 14.0]


def test_a_size_that_fails_says_why_and_the_next_is_still_measured(monkeypatch):
    monkeypatch.setattr(bench_scale, "QUICK", [(4, 20), (8, 40)])
    asked = []

    def measure(hypervisors, vms, progress, **kw):
        asked.append(hypervisors)
        raise bench_scale.ScaleError(f"the attach was not confirmed on {hypervisors} hypervisors within 30 s")

    monkeypatch.setattr(bench_scale, "measure", measure)
    out = bench_scale.run(True, lambda line: None)
    assert asked == [4, 8]
    assert out["cold_s@4x20"]["value"] is None and "not confirmed on 4" in out["cold_s@4x20"]["note"]
    assert out["cold_s@8x40"]["value"] is None and "not confirmed on 8" in out["cold_s@8x40"]["note"]


def test_cpu_per_attach_is_not_judged_when_the_idle_controller_moved_it_more():
    def fig(value):
        return {"value": value, "met": value < 10, "note": "p50 of 3 batches"}
    assert bench_scale._usable(fig(13.6), [10.6, 13.6, 16.6], 9)["met"] is False
    noisy = bench_scale._usable(fig(-60.8), [11.6, -60.8, -88.7], 83)
    assert noisy["met"] is None and noisy["note"].startswith("NOT USABLE") and noisy["value"] == -60.8
    assert bench_scale._usable(fig(8.0), [2.0, 8.0, 30.0], 50)["met"] is None     # spread over the value
