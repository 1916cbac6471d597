"""Everything one hypervisor's br-int should hold: logical switching, distributed routing and
port security, every punt to the controller behind a meter."""
from __future__ import annotations

from controller.flows import Flow
from controller.l2 import l2_flows
from controller.l3 import l3_flows
from controller.mobility import deliver_by_group, mobility_flows
from controller.model import Hypervisor, Network
from controller.security import meter_punts, security_flows


def hypervisor_flows(net: Network, hv: Hypervisor) -> list[Flow]:
    flows = l2_flows(net, hv) + l3_flows(net, hv) + security_flows(net, hv) + mobility_flows(net, hv)
    return meter_punts(deliver_by_group(flows, hv), hv)
