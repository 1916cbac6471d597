"""`packetwalk bench --quick --json`: every scenario's figures, present and sane (never a time
judged: a bench measures), its plots written, nothing left running."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from packetwalk.bench import SCENARIOS

pytestmark = pytest.mark.root
KEYS = {"value", "unit", "baseline", "baseline_of", "target", "met"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    plots = tmp_path_factory.mktemp("plots")
    run = subprocess.run([sys.executable, "-m", "packetwalk.cli", "bench", "--quick", "--json", "--plot", str(plots)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "underlay-table: running" in run.stderr           # progress, while it runs
    return json.loads(run.stdout), plots


def figs(result, scenario) -> dict:
    return result["scenarios"][scenario]["figures"]


def test_every_scenario_gives_its_figures_each_with_baseline_and_target(quick):
    result, _ = quick
    assert result["ok"] is True and list(result["scenarios"]) == list(SCENARIOS)
    for name, s in result["scenarios"].items():
        if name == "scale" and "not_available" in s:           # its module comes with the scale work
            continue
        assert s.get("figures"), (name, s.get("error"))
        for fname, f in s["figures"].items():
            assert KEYS <= f.keys(), (name, fname)
            assert f["value"] is None and f.get("note") or isinstance(f["value"], (int, float)), (name, fname)
            assert f["value"] is None or f["value"] >= 0 or "fitted" in fname, (name, fname, f["value"])


def test_the_overlay_keeps_vm_macs_and_arp_off_the_underlay(quick):
    result, _ = quick
    t = figs(result, "underlay-table")
    assert t["vm_macs_on_underlay@2x2"]["value"] == 0 and t["vm_macs_on_underlay@2x2"]["baseline"] == 4
    assert t["underlay_macs@2x2"]["value"] == 2 and t["underlay_macs@2x2"]["baseline"] >= 5
    a = figs(result, "underlay-arp")
    assert a["arp_frames_suppression_on@2x2"]["value"] == 0
    assert a["arp_frames_suppression_off@2x2"]["value"] > 0 and a["arp_frames_suppression_on@2x2"]["baseline"] > 0
    assert a["pings_failed@2x2"]["value"] == 0


def test_routing_at_the_first_hop_against_the_central_routers_hairpin(quick):
    r = figs(quick[0], "routing-path")
    assert r["underlay_packets_per_ping@same_host"]["value"] == 0
    assert r["underlay_packets_per_ping@cross_host"]["value"] == 2
    assert r["underlay_packets_per_ping@same_host"]["baseline"] >= 4       # up to the router and back
    assert r["rtt_ms@same_host"]["value"] > 0 and r["rtt_ms@cross_host"]["baseline"] > 0


def test_convergence_footprint_start_and_throughput_are_measured(quick):
    result, plots = quick
    c = figs(result, "convergence")
    assert c["attach_to_first_reply_p95_ms@2x2"]["samples"] and min(c["attach_to_first_reply_p95_ms@2x2"]["samples"]) >= 0
    assert c["attach_to_realized_p50_ms@2x2"]["value"] > 0          # the controller confirms attaches
    f = figs(result, "flow-footprint")
    assert f["lab_flows_hv1@2x2"]["met"] is True                   # the lab holds what the model computes
    assert f["flows_per_unreachable_vm"]["value"] == 0
    assert figs(result, "lab-start")["first_ping_failed@2x2"]["value"] == 0
    t = figs(result, "throughput")
    assert all(t[k]["value"] > 0 for k in ("veth_ceiling", "tcp_switched", "tcp_routed"))
    assert {p.name for p in plots.iterdir()} >= {"underlay-macs.png", "flows.png", "attach.png"}
