"""The tests' networks, written as lab topology dicts and turned into the controller's intent
the way the lab does it (mininet_topos.topology.intent_dict, then controller.intent's rules):
each VM becomes a logical port with its configured IP (source "port", no snooping needed),
or, for the VMs named in `learn`, a "learn the IP" port with no address.

`network()` also connects the topology's hypervisors and binds each VM's interface to its
logical port (external_ids:iface-id), as the app does from OVSDB.
"""
from __future__ import annotations

import copy

from controller.intent import Intent, parse_intent
from controller.model import Hypervisor, Network
from mininet_topos.topology import Topology, intent_dict, parse_topology


def intent_of(topo: dict, learn=()) -> tuple[Topology, Intent]:
    """The parsed topology and its logical part as a checked Intent."""
    topology = parse_topology(copy.deepcopy(topo), "t.yaml")
    d = intent_dict(topology)
    for port in d["logical_ports"]:
        if port["name"] in learn:
            port.update(ips=[], learn=True)
    return topology, parse_intent(d)


def network(topo: dict, learn=(), iface: str = "{vm}", ofports: dict[str, int] | None = None
            ) -> tuple[Topology, Network]:
    """A Network on the topology's intent; every hypervisor connected (management and VTEP IP
    from the topology) with its VMs' interfaces (named `iface`, numbered from 1 in file
    order unless `ofports` gives a VM's number) bound to their logical ports."""
    topology, intent = intent_of(topo, learn)
    net = Network(intent)
    for h in topology.hypervisors:
        hv = net.hypervisors[h.name] = Hypervisor(h.name, str(h.mgmt_ip), str(h.vtep_ip))
        net.set_interfaces(hv, {iface.format(vm=vm.name): ((ofports or {}).get(vm.name, i), vm.name)
                                for i, vm in enumerate(topology.vms_on(h.name), start=1)})
    return topology, net


def port_of(net: Network, lport: str):
    """(hypervisor, attachment) of a logical port."""
    return next((hv, a) for hv in net.hypervisors.values() for a in hv.attachments.values() if a.lport == lport)


def port_security_open():
    """A PORT_SECURITY table that lets everything through to ARP_SNOOP: for tests of the
    other tables (port security has its own: tests/unit/test_security.py)."""
    from controller.flows import Flow, Goto
    from controller.tables import Table
    return Flow.of(Table.PORT_SECURITY, 0, {}, [Goto(Table.ARP_SNOOP)], "test")
