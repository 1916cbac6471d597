"""A controller stand-in for the northbound API's tests (test_api.py, test_show.py): the app's
side of the API (northbound.Controller) with no os-ken, on a REAL embedded database, so every
write is a real transaction checked by the intent's rules."""
from __future__ import annotations

import contextlib
from pathlib import Path

from controller import nbdb
from controller.model import Hypervisor, Network
from controller.pipeline import hypervisor_flows
from tests.labnet import intent_of, port_of

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
            {"name": "vm5", "hypervisor": "hv1", "switch": "spare", "ip": "10.1.9.15"},
            {"name": "vm9", "hypervisor": "hv1", "switch": "web", "ip": "10.1.1.99", "mac": MAC["vm9"]}],
    "static_bindings": [{"switch": "web", "ip": "10.1.1.50", "mac": "00:50:56:00:99:01"}],
}
# vm9 is a "learn the IP" port (no configured address); the others have their configured IPs.
INTENT = intent_of(TOPOLOGY, learn=("vm9",))[1].to_dict()


@contextlib.contextmanager
def embedded_database(directory: Path):
    """An embedded ovsdb-server on a new database in `directory` and a client of it; both
    stopped on the way out."""
    server = nbdb.EmbeddedServer(directory)
    server.prepare()
    server.start()
    try:
        client = nbdb.NbClient(server.remote, lambda table=None: None)
        client.connect()
        try:
            yield client
        finally:
            client.close()
    finally:
        server.stop()


class InlineController:
    """The app as the API sees it, its calls run inline. The database is reset to INTENT;
    hv1 has vm1 and vm9 on web (vm9 has learned 10.1.1.99); hv2 has vm2 on web and vm3 on
    app; vm5 (spare) is attached nowhere."""

    def __init__(self, nb: nbdb.NbClient):
        self.nb = nb
        self.generation = 0
        self.net = Network()
        nb.change_intent(lambda d: (d.clear(), d.update(INTENT)), exact=True)
        self.sync()
        hv1 = Hypervisor("hv1", "169.254.77.2", "192.168.50.1", dpid=1, ovsdb_connected=True)
        hv2 = Hypervisor("hv2", "169.254.77.3", "192.168.50.2", dpid=2, ovsdb_connected=True)
        hv1.tunnels, hv1.tunnel_state = {"hv2": 3}, {"hv2": "up"}
        hv2.tunnels, hv2.tunnel_state = {"hv1": 4}, {"hv1": "down"}
        self.net.hypervisors = {"hv1": hv1, "hv2": hv2}
        self.net.set_interfaces(hv1, {"vm1": (1, "vm1"), "vm9": (2, "vm9")})
        self.net.set_interfaces(hv2, {"vm2": (1, "vm2"), "vm3": (2, "vm3")})
        self.net.learn_binding(port_of(self.net, "vm9")[1], "10.1.1.99")

    # --- northbound.Controller ------------------------------------------------------------
    def call(self, fn):
        return fn(self)

    def installed_flows(self, hv):
        return hypervisor_flows(self.net, hv)

    def installed_count(self, hv):
        return len(self.installed_flows(hv))

    def write_intent(self, edit, exact=False):
        """As the app: one transaction, then the model follows the database."""
        result = self.nb.change_intent(edit, exact)
        self.sync()
        return result

    def forget_learned(self, vni, ip):
        return self.net.forget_learned(vni, ip)

    def sync(self):
        snap = self.nb.read()
        self.generation = snap["generation"]
        self.net.set_intent(nbdb.checked_intent(snap["intent"]))
