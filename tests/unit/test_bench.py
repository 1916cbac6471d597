"""packetwalk bench without a lab: the figure shape, the runner's verdicts, the report, the
plots, and the pure model's footprint."""
from __future__ import annotations

import subprocess
import sys
import types

import pytest

from packetwalk import bench
from packetwalk.bench import convergence, footprint, labs, plots, report


def test_a_figure_says_whether_it_met_its_target():
    assert bench.figure(0.9, "s", target=("<=", 0.7))["met"] is False
    f = bench.figure(2, "MACs", baseline=130, baseline_of="physical", target=("==", 2), at={"vms": 128})
    assert (f["met"], f["target"], f["at"], f["baseline_of"]) == (True, "== 2", {"vms": 128}, "physical")
    assert bench.figure(None, "ms", target=("<=", 21))["met"] is None       # not measured: no verdict
    assert bench.ratio(4, 0) is None and bench.ratio(None, 2) is None and bench.ratio(9, 2) == 4.5


@pytest.fixture
def scenarios(monkeypatch):
    """A registry of fake scenarios in a module of our own."""
    mod = types.ModuleType("fake_scenarios")
    mod.good = lambda quick, progress: {"x@2x2": bench.figure(None if quick else 3, "ms", target=("<=", 2),
                                                               note="not measured in quick")}
    mod.broken = lambda quick, progress: 1 / 0
    monkeypatch.setitem(sys.modules, "fake_scenarios", mod)
    monkeypatch.setattr(bench, "SCENARIOS", {"good": ("fake_scenarios", "good"), "broken": ("fake_scenarios", "broken"),
                                             "absent": ("packetwalk.no_such_module", "run")})


def test_a_missing_module_is_not_available_a_broken_scenario_is_a_failure(scenarios):
    seen = []
    r = report.run(["good", "absent"], False, seen.append)
    assert r["ok"] is True and "not_available" in r["scenarios"]["absent"]
    assert r["scenarios"]["good"]["figures"]["x@2x2"]["met"] is False
    assert "good: running" in seen
    r = report.run(["good", "broken"], False, seen.append)
    assert r["ok"] is False and "ZeroDivisionError" in r["scenarios"]["broken"]["error"]
    assert "figures" in r["scenarios"]["good"]              # one failure loses nothing else


def test_the_report_puts_each_figure_beside_its_baseline_and_target(scenarios):
    text = report.text(report.run(["good", "absent", "broken"], True, lambda m: None))
    row = next(line for line in text.splitlines() if line.strip().startswith("x@2x2"))
    assert "n/a" in row and "<= 2" in row
    assert "not available" in text and "FAILED: ZeroDivisionError" in text and "not measured in quick" in text
    text = report.text(report.run(["good"], False, lambda m: None))
    assert "3 ms" in text and "MISSED" in text


def test_unknown_scenario_is_refused_before_anything_starts():
    r = subprocess.run([sys.executable, "-m", "packetwalk.cli", "bench", "underlay-table", "nosuch"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown scenario nosuch" in r.stderr and "throughput" in r.stderr
    assert "Traceback" not in r.stderr


def test_plots_are_written_for_the_figures_there_are(tmp_path):
    f = bench.figure
    result = {"scenarios": {
        "underlay-table": {"figures": {f"underlay_macs@2x{v}": f(2, "MACs", baseline=2 * v + 2, at={"hypervisors": 2,
                                                                                                     "vms": 2 * v})
                                       for v in (1, 4)}},
        "convergence": {"figures": {"attach_to_first_reply_p95_ms@2x2": f(12.0, "ms", baseline=21, samples=[8.0, 12.0],
                                                                          at={"hypervisors": 2, "vms": 4})}},
        "scale": {"figures": {f"cold_s@{h}x25": f(h / 10, "s", at={"hypervisors": h, "vms": 25 * h})
                              for h in (10, 50, 200)}}}}
    written = plots.write(result, tmp_path / "img")
    assert sorted(p.name for p in written) == ["attach.png", "scale.png", "underlay-macs.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    assert plots.write({"scenarios": {}}, tmp_path / "none") == []


def test_a_hypervisors_flows_grow_with_the_vms_it_can_reach_not_with_all():
    reach = [footprint.flows_per_hypervisor(footprint.tenants(t, 2, 2)) for t in (1, 2, 3)]
    assert reach[0] == reach[1] == reach[2]
    assert footprint.flows_per_hypervisor(labs.grid(2, 4)) > footprint.flows_per_hypervisor(labs.grid(2, 2))
    assert footprint.flow_mods_per_attach(labs.grid(2, 2)) > 0


def test_least_squares_finds_the_growth_of_an_exact_line():
    rows = [(vms, hvs) for vms in (4, 8, 16) for hvs in (2, 4)]
    assert footprint.fit(rows, [10 + 3 * v + 5 * h for v, h in rows]) == [10.0, 3.0, 5.0]


def test_percentiles_are_nearest_rank():
    values = list(range(1, 21))
    assert (convergence.percentile(values, 50), convergence.percentile(values, 95)) == (10, 19)
    assert convergence.percentile([7.0], 95) == 7.0 and convergence.percentile([], 50) is None


def test_a_lab_starts_steps_are_read_from_its_progress_lines():
    from packetwalk.bench import labstart
    lines = [(0.0, "lab g2x1: stopping the lab before"),
             (0.01, "lab g2x2: building g2x2: 2 hypervisors, 4 VMs"),
             (0.2, "lab g2x2: starting 2 hypervisors: ovsdb-server + ovs-vswitchd each, VTEPs 1..2"),
             (0.4, "lab g2x2: the hypervisors' daemons are up; waiting for the controller to listen"),
             (0.5, "lab g2x2: the controller listens and holds the intent; hypervisors connect"),
             (0.7, "lab g2x2: every hypervisor connected (OpenFlow and OVSDB) (0.20 s of waiting)"),
             (0.8, "lab g2x2: ready after 0.3 s of waiting")]
    assert labstart.steps(lines) == ("network built 0.19, hypervisors' daemons up 0.39, controller listening with "
                                     "the intent 0.49, every hypervisor connected 0.69, VTEPs resolved: ready 0.79")


def test_the_scale_sizes_can_stop_at_a_number_of_hypervisors(monkeypatch):
    monkeypatch.setattr(bench, "MAX_HYPERVISORS", 50)
    assert bench.within_limit([(10, 250), (50, 1250), (100, 2500)]) == [(10, 250), (50, 1250)]
    monkeypatch.setattr(bench, "MAX_HYPERVISORS", None)
    assert len(bench.within_limit([(10, 250), (200, 5000)])) == 2
