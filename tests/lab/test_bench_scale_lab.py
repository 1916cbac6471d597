"""The scale bench at its quick size: every figure there, and nothing left behind."""
from __future__ import annotations

import pytest

from mininet_topos import cleanup
from packetwalk import bench_scale
from tests.lab.conftest import bench_processes

pytestmark = pytest.mark.root


def test_quick_scale_reports_every_figure_and_leaves_nothing_behind():
    seen = []
    figures = bench_scale.run(quick=True, progress=seen.append)
    size = "{}x{}".format(*bench_scale.QUICK[-1])
    for metric in ("cold_s", "attach_ms", "attach_p95_ms", "attach_realized_ms", "detach_ms", "detach_after_hold_ms",
                   "cpu_cold_s", "cpu_per_attach_ms", "peak_memory_mb", "flows_per_hv", "flow_mods_per_attach"):
        f = figures[f"{metric}@{size}"]
        assert isinstance(f["value"], (int, float)), (metric, f)
    assert figures[f"flows_per_hv@{size}"]["value"] > 0 and figures[f"flow_mods_per_attach@{size}"]["value"] > 0
    assert 0 < figures[f"cold_s@{size}"]["value"] < 60 and figures[f"attach_ms@{size}"]["value"] > 0
    assert figures[f"attach_ms@{size}"]["target"] == "< 100"
    assert figures[f"realized_before_switches@{size}"]["value"] == 0     # the API's realized is what the switches hold
    assert len(figures[f"cpu_per_attach_ms@{size}"]["samples"]) >= 2    # its spread is reported
    assert any("programmed from cold" in line for line in seen)
    assert cleanup.our_netns() == [] and cleanup.our_links() == []
    assert bench_processes(bench_scale.RUNDIR, [bench_scale.API_PORT]) == []
