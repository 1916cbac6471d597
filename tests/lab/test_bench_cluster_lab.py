"""The scale bench under 1 and 3 controllers at its quick size: every figure there, the
takeover converged by difference, and nothing left behind."""
from __future__ import annotations

import pytest

from mininet_topos import cleanup
from packetwalk import bench_cluster
from tests.lab.conftest import bench_processes

pytestmark = pytest.mark.root


def test_quick_scale_cluster_reports_every_figure_and_leaves_nothing_behind():
    seen = []
    figures = bench_cluster.run(quick=True, progress=seen.append)
    hypervisors, vms = bench_cluster.QUICK[-1]
    for n in bench_cluster.CONTROLLERS:
        size = f"{hypervisors}x{vms}/{n}ctl"
        names = ["busiest_controller_hvs", "cold_s", "cpu_cold_s", "peak_memory_mb", "failover_s",
                 "takeover_flow_mods", "new_master_on_switch"] + (["failover_claimed_s"] if n > 1 else [])
        for metric in names:
            f = figures[f"{metric}@{size}"]
            assert isinstance(f["value"], (int, float)), (metric, f)
        assert figures[f"cold_s@{size}"]["value"] > 0 and figures[f"failover_s@{size}"]["value"] > 0
        assert figures[f"failover_s@{size}"]["target"] == "< 3"
        # each hypervisor taken over has its new owner as its one master, and nothing was resent
        taken = int(figures[f"new_master_on_switch@{size}"]["target"].split()[-1])
        assert 0 < taken <= hypervisors and figures[f"new_master_on_switch@{size}"]["met"] is True
        assert figures[f"takeover_flow_mods@{size}"]["value"] == 0
    assert figures[f"busiest_controller_hvs@{hypervisors}x{vms}/1ctl"]["value"] == hypervisors
    assert "ctl3" in figures[f"busiest_controller_hvs@{hypervisors}x{vms}/3ctl"]["note"]
    assert any("programmed from cold" in line for line in seen)
    assert cleanup.our_netns() == [] and cleanup.our_links() == []
    api_ports = [bench_cluster.API_PORT + i for i in range(1, max(bench_cluster.CONTROLLERS) + 1)]
    assert bench_processes(bench_cluster.RUNDIR, api_ports) == []
