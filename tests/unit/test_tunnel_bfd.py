"""BFD on the tunnel ports (controller/ovsdb.py): a hypervisor's BFD traffic stays within a
budget however many tunnels it has, and never goes faster than the 500 ms it had."""
from __future__ import annotations

import pytest

from controller.ovsdb import BFD_FASTEST_MS, BFD_PACKETS_PER_S, BFD_SLOWEST_MS, bfd_interval_ms


@pytest.mark.parametrize("tunnels", [1, 7, 15])
def test_a_small_mesh_keeps_the_fastest_interval(tunnels):
    assert bfd_interval_ms(tunnels) == BFD_FASTEST_MS


@pytest.mark.parametrize("tunnels", [17, 31, 63, 127, 199])
def test_a_large_mesh_sends_at_most_the_budget(tunnels):
    interval = bfd_interval_ms(tunnels)
    assert BFD_FASTEST_MS < interval <= BFD_SLOWEST_MS
    assert tunnels * 1000 / interval <= BFD_PACKETS_PER_S
    assert tunnels * 1000 / (interval - 1) > BFD_PACKETS_PER_S      # and no slower than it needs


def test_a_huge_mesh_is_capped_at_the_slowest_interval():
    assert bfd_interval_ms(5000) == BFD_SLOWEST_MS


def test_the_ovsdb_probe_grows_with_the_hypervisors_from_1_s():
    from controller.ovsdb import probe_interval_ms
    assert [probe_interval_ms(n) for n in (0, 1, 50, 51, 100, 200)] == [1000, 1000, 1000, 2000, 2000, 4000]
