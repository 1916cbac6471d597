"""Everything one hypervisor's br-int should hold: logical switching plus distributed routing."""
from __future__ import annotations

from controller.flows import Flow
from controller.l2 import l2_flows
from controller.l3 import l3_flows
from controller.model import Hypervisor, Network


def hypervisor_flows(net: Network, hv: Hypervisor) -> list[Flow]:
    return l2_flows(net, hv) + l3_flows(net, hv)
