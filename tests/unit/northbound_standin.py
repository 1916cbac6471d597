"""A controller stand-in for the northbound API's tests (test_api.py, test_show.py)."""
from __future__ import annotations

import copy

from controller.model import Attachment, Hypervisor, Network
from controller.pipeline import hypervisor_flows
from mininet_topos.topology import parse_topology

WEB, APP, SPARE = 5001, 5002, 5009
MAC = {"vm1": "00:50:56:00:00:01", "vm2": "00:50:56:00:00:02", "vm3": "00:50:56:00:00:03",
       "vm9": "00:50:56:00:00:09"}
TOPOLOGY = {
    "name": "t", "hypervisors": [{"name": "hv1"}, {"name": "hv2"}],
    "logical_switches": [{"name": "web", "vni": WEB, "subnet": "10.1.1.0/24"},
                         {"name": "app", "vni": APP, "subnet": "10.1.2.0/24"},
                         {"name": "spare", "vni": SPARE, "subnet": "10.1.9.0/24"}],
    "logical_routers": [{"name": "dlr1", "interfaces": [{"switch": "web", "ip": "10.1.1.1"},
                                                         {"switch": "app", "ip": "10.1.2.1"}],
                         "routes": [{"prefix": "0.0.0.0/0", "next_hop": "10.1.2.254"}]}],
    "vms": [{"name": "vm1", "hypervisor": "hv1", "switch": "web", "ip": "10.1.1.11", "mac": MAC["vm1"]},
            {"name": "vm2", "hypervisor": "hv2", "switch": "web", "ip": "10.1.1.12", "mac": MAC["vm2"]},
            {"name": "vm3", "hypervisor": "hv2", "switch": "app", "ip": "10.1.2.13", "mac": MAC["vm3"]},
            {"name": "vm5", "hypervisor": "hv1", "switch": "spare", "ip": "10.1.9.15"}],
    "static_bindings": [{"switch": "web", "ip": "10.1.1.50", "mac": "00:50:56:00:99:01"}],
}


class InlineController:
    """The app as the API sees it (northbound.Controller), with no os-ken: hv1 has vm1 and
    vm9 (a VM the topology does not name) on web; hv2 has vm2 on web and vm3 on app."""

    def __init__(self):
        self.net = Network(parse_topology(copy.deepcopy(TOPOLOGY), "t.yaml"))
        self.applied = 0
        hv1 = Hypervisor("hv1", "169.254.77.2", "192.168.50.1", dpid=1, ovsdb_connected=True)
        hv2 = Hypervisor("hv2", "169.254.77.3", "192.168.50.2", dpid=2, ovsdb_connected=True)
        hv1.tunnels, hv1.tunnel_state = {"hv2": 3}, {"hv2": "up"}
        hv2.tunnels, hv2.tunnel_state = {"hv1": 4}, {"hv1": "down"}
        self.net.hypervisors = {"hv1": hv1, "hv2": hv2}
        self.net.set_attachments(hv1, {p: Attachment(p, i, p, MAC[p], WEB) for i, p in ((1, "vm1"), (2, "vm9"))})
        self.net.set_attachments(hv2, {"vm2": Attachment("vm2", 1, "vm2", MAC["vm2"], WEB),
                                       "vm3": Attachment("vm3", 2, "vm3", MAC["vm3"], APP)})
        for vm, ip, vni in (("vm1", "10.1.1.11", WEB), ("vm2", "10.1.1.12", WEB),
                            ("vm3", "10.1.2.13", APP), ("vm9", "10.1.1.99", WEB)):
            self.net.learn_binding(vni, ip, MAC[vm])

    def installed_flows(self, hv):
        return hypervisor_flows(self.net, hv)

    def apply_topology(self, topology):
        self.net.set_topology(topology)
        self.applied += 1
