"""The scale-cluster scenario's figures and plot, from measurements given (no lab)."""
from __future__ import annotations

from packetwalk import bench_cluster
from packetwalk.bench import plots


def measured(hypervisors: int, controllers: int, **over) -> dict:
    spread = {f"ctl{i}": hypervisors // controllers + (i <= hypervisors % controllers) for i in range(1, controllers + 1)}
    r = {"hypervisors": hypervisors, "vms": 25 * hypervisors, "controllers": controllers, "spread": spread,
         "cold_s": 0.1 * hypervisors, "cold_cpu_s": [1.0] * controllers, "db_cpu_s": 0.5, "peak_mb": 90.0,
         "load": 2.0, "load_after": 2.5, "victim": "ctl1", "victim_hvs": spread["ctl1"], "failover_s": 1.5,
         "failover_p50_s": 1.4, "claimed_s": None if controllers == 1 else 1.3, "takeover_flow_mods": 0,
         "flows_changed": 0, "masters": spread["ctl1"]}
    return {**r, **over}


def test_each_controller_count_has_its_own_figures_beside_their_targets():
    one = bench_cluster.figures(measured(200, 1), largest=True)
    three = bench_cluster.figures(measured(200, 3, takeover_flow_mods=4, failover_s=3.5), largest=True)
    assert set(one) == {f"{m}@200x5000/1ctl" for m in ("busiest_controller_hvs", "cold_s", "cpu_cold_s",
                                                        "peak_memory_mb", "failover_s", "takeover_flow_mods",
                                                        "new_master_on_switch")}
    assert set(three) == {n.replace("/1ctl", "/3ctl") for n in one} | {"failover_claimed_s@200x5000/3ctl"}
    assert three["busiest_controller_hvs@200x5000/3ctl"]["value"] == 67
    assert three["busiest_controller_hvs@200x5000/3ctl"]["baseline"] == 66.7
    assert three["cold_s@200x5000/3ctl"]["target"] == "< 10" and three["cold_s@200x5000/3ctl"]["met"] is False
    assert three["failover_s@200x5000/3ctl"]["met"] is False and one["failover_s@200x5000/1ctl"]["met"] is True
    assert three["takeover_flow_mods@200x5000/3ctl"]["met"] is False
    assert three["new_master_on_switch@200x5000/3ctl"]["target"] == "== 67"
    assert "restart" in one["failover_s@200x5000/1ctl"]["note"]
    small = bench_cluster.figures(measured(10, 3), largest=False)
    assert small["cold_s@10x250/3ctl"]["target"] is None


def test_the_plot_puts_one_line_per_controller_count(tmp_path):
    figs = {}
    for h in (10, 50, 100):
        for n in bench_cluster.CONTROLLERS:
            figs.update(bench_cluster.figures(measured(h, n), largest=False))
    written = plots.write({"scenarios": {"scale-cluster": {"figures": figs}}}, tmp_path)
    assert [p.name for p in written] == ["scale-cluster.png"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failover_that_did_not_converge_has_no_value_and_says_how_far_it_got():
    r = measured(50, 3, failover_s=None, failover_p50_s=None, converged=12, failover_limit_s=77, claimed_s=None)
    f = bench_cluster.figures(r, largest=False)
    assert f["failover_s@50x1250/3ctl"]["value"] is None and f["failover_s@50x1250/3ctl"]["met"] is None
    assert "12 of 17 hypervisors" in f["failover_s@50x1250/3ctl"]["note"]
    assert f["failover_claimed_s@50x1250/3ctl"]["value"] is None


def test_a_failover_that_could_not_be_measured_keeps_the_cold_figures():
    r = {k: v for k, v in measured(50, 1).items() if k not in ("failover_s", "victim_hvs", "masters")}
    f = bench_cluster.figures({**r, "failover_error": "its API did not answer"}, largest=False)
    assert f["cold_s@50x1250/1ctl"]["value"] == 5.0 and f["failover_s@50x1250/1ctl"]["value"] is None
    assert "its API did not answer" in f["failover_s@50x1250/1ctl"]["note"]
    assert f["takeover_flow_mods@50x1250/1ctl"]["value"] is None
