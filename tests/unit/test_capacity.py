"""A lab larger than the machine is refused before anything starts, with the limit and why."""
from __future__ import annotations

import subprocess
import sys

from mininet_topos.capacity import Machine, too_large, tunnel_ends
from mininet_topos.topology import load_topology, parse_topology
from tests.lab.conftest import TOPOLOGIES

BIG = Machine(cores=2, available_mb=20000)


def mesh(hypervisors: int) -> dict:
    return {"name": "big", "underlay": "192.168.0.0/20", "management": "169.254.64.0/20", "hypervisors": [{"name": f"hv{i}"} for i in range(hypervisors)],
            "logical_switches": [{"name": "web", "vni": 5001, "subnet": "10.1.0.0/16"}],
            "vms": [{"name": f"vm{i}", "hypervisor": f"hv{i}", "switch": "web",
                     "ip": f"10.1.{i // 200}.{i % 200 + 10}"} for i in range(hypervisors)]}


def test_tunnel_ends_follow_what_each_hypervisor_reaches():
    assert tunnel_ends(load_topology(TOPOLOGIES / "seed.yaml")) == 2
    assert tunnel_ends(parse_topology(mesh(8))) == 8 * 7


def test_the_seed_fits():
    assert too_large(load_topology(TOPOLOGIES / "seed.yaml"), BIG) is None


def test_500_hypervisors_are_refused_with_the_limit_and_why():
    reason = too_large(parse_topology(mesh(500)), BIG)
    assert "500 hypervisors" in reason and "at most 64" in reason and "61-93 s" in reason


def test_a_mesh_too_large_for_the_cores():
    reason = too_large(parse_topology(mesh(40)), Machine(cores=1, available_mb=20000))
    assert "1,560 tunnel ends sending 1,200 BFD packets a second" in reason and "at most 1,000" in reason
    assert too_large(parse_topology(mesh(40)), BIG) is None


def test_64_hypervisors_fit_with_bfd_slowed_down():
    """At 500 ms, 64 hypervisors' 4,032 tunnel ends would send 8,064 BFD packets a second;
    slowed down to 30 a second from each, 1,920."""
    from mininet_topos.capacity import bfd_packets
    big = parse_topology(mesh(64))
    assert round(bfd_packets(big)) == 1920 and too_large(big, BIG) is None


def test_memory():
    assert "MB available" in too_large(parse_topology(mesh(8)), Machine(cores=2, available_mb=300))


def test_the_cli_refuses_before_starting(tmp_path):
    import yaml
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(mesh(500)))
    r = subprocess.run([sys.executable, "-m", "packetwalk.cli", "lab", "--topology", str(path), "--test",
                        "underlay"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"{path}: too large for this machine: 500 hypervisors" in r.stderr
    assert "Traceback" not in r.stderr
