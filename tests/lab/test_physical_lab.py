"""The physical baseline (no overlay): VLANs, one central router: the hairpin the DLR avoids."""
from __future__ import annotations

import pytest

from mininet_topos.checks import routing, underlay_macs

pytestmark = pytest.mark.root


def test_physical_baseline_hairpins_through_the_central_router(physical_lab):
    result = routing(physical_lab)
    assert result["same_host"]["replies"] == 1 and result["same_host"]["ttl_at_receiver"] == 63
    assert result["same_host"]["underlay_packets"] == 4       # up to the router and back, both ways
    assert result["cross_host"]["underlay_packets"] == 4
    macs = underlay_macs(physical_lab)
    assert macs["vm_macs_seen"] == 4                           # the physical switch learns every VM
