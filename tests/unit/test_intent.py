"""Intent's rules (controller/intent.py): a good intent reads back as itself, and every broken
rule is one IntentError whose message names the item and the problem."""
from __future__ import annotations

import copy
from ipaddress import IPv4Address

import pytest

from controller.intent import DEFAULT_VMAC, IntentError, parse_intent

GOOD = {
    "logical_switches": [{"name": "web", "vni": 5001, "subnet": "10.1.1.0/24"},
                         {"name": "app", "vni": 5002, "subnet": "10.1.2.0/24"}],
    "logical_routers": [{"name": "r1", "interfaces": [{"switch": "web", "ip": "10.1.1.1"},
                                                      {"switch": "app", "ip": "10.1.2.1"}],
                         "routes": [{"prefix": "0.0.0.0/0", "next_hop": "10.1.2.254"}]}],
    "static_bindings": [{"switch": "web", "ip": "10.1.1.50", "mac": "00:50:56:00:99:01"}],
    "logical_ports": [{"name": "vm1", "switch": "web", "mac": "00:50:56:00:00:01", "ips": ["10.1.1.11"]},
                      {"name": "vm9", "switch": "web", "mac": "00:50:56:00:00:09", "learn": True}],
}


def broken(edit) -> str:
    d = copy.deepcopy(GOOD)
    edit(d)
    with pytest.raises(IntentError) as e:
        parse_intent(d)
    return str(e.value)


def test_a_good_intent_reads_back_as_itself():
    intent = parse_intent(GOOD)
    assert (intent.vmac, intent.arp_suppression) == (DEFAULT_VMAC, True)
    assert intent.port("vm9").learn and intent.port("vm9").ips == () and intent.port("vm1").ips == ("10.1.1.11",)
    assert intent.gateway("app") == ("r1", IPv4Address("10.1.2.1")) and intent.port("nobody") is None
    assert parse_intent(intent.to_dict()) == intent
    with pytest.raises(KeyError, match="no logical switch named 'db'"):
        intent.switch("db")


def test_names_are_not_bound_by_linux_interface_names():
    name = "Tenant-A.web:frontend_" + "x" * 42                      # 64 characters
    d = copy.deepcopy(GOOD)
    d["logical_switches"][0]["name"] = d["logical_ports"][0]["switch"] = name
    d["logical_routers"][0]["interfaces"][0]["switch"] = d["static_bindings"][0]["switch"] = name
    d["logical_ports"][1]["switch"] = name
    assert parse_intent(d).switch(name).vni == 5001
    assert broken(lambda d: d["logical_switches"][0].update(name=name + "y")) == (
        f"logical_switches[0]: name '{name}y' is not a valid name: use 1-64 letters, digits, '_', '.', ':' "
        "or '-', starting with a letter or digit")


def test_the_same_ip_and_mac_on_two_switches_are_two_things():
    d = copy.deepcopy(GOOD)
    d["logical_switches"].append({"name": "web2", "vni": 5003, "subnet": "10.1.1.0/24"})
    d["logical_ports"].append({"name": "twin", "switch": "web2", "mac": "00:50:56:00:00:01", "ips": ["10.1.1.11"]})
    assert parse_intent(d).port("twin").ips == ("10.1.1.11",)


SW0, PORT0 = "logical_switches[0] 'web'", "logical_ports[0] 'vm1'"
LIF0 = "logical_routers[0] 'r1' interfaces[0]"
ROUTE0 = "logical_routers[0] 'r1' routes[0]"
RULES = [
    # the whole, and the settings
    (lambda d: d.update(vms=[]), "intent: unknown key 'vms' (allowed: vmac, arp_suppression, logical_switches, "
                                 "logical_ports, logical_routers, static_bindings)"),
    (lambda d: d.update(logical_switches={}), "intent: logical_switches must be a list, got dict"),
    (lambda d: d.update(vmac="02:50:56"), "settings: vmac '02:50:56' is not a MAC address: six hex pairs separated "
                                          "by ':'"),
    (lambda d: d.update(vmac="03:00:00:00:00:01"), "settings: vmac 03:00:00:00:00:01 is not a unicast NIC address"),
    (lambda d: d.update(arp_suppression="yes"), "settings: arp_suppression must be true or false, got 'yes'"),
    # logical switches
    (lambda d: d["logical_switches"].append("db"), "logical_switches[2]: must be a mapping, got str"),
    (lambda d: d["logical_switches"][0].update(mtu=9000), f"{SW0}: unknown key 'mtu' (allowed: name, vni, subnet)"),
    (lambda d: d["logical_switches"][0].pop("vni"), f"{SW0}: missing required key 'vni'"),
    (lambda d: d["logical_switches"][0].update(name="-web"), "logical_switches[0]: name '-web' is not a valid name"),
    (lambda d: d["logical_switches"][1].update(name="web"), "logical_switches[1] 'web': name 'web' is already used"),
    (lambda d: d["logical_switches"][0].update(vni=True), f"{SW0}: vni must be a whole number, got True"),
    (lambda d: d["logical_switches"][0].update(vni="5001"), f"{SW0}: vni must be a whole number, got '5001'"),
    (lambda d: d["logical_switches"][0].update(vni=4095), f"{SW0}: vni 4095 is out of range 4096..16777215"),
    (lambda d: d["logical_switches"][0].update(vni=2**24), f"{SW0}: vni 16777216 is out of range 4096..16777215"),
    (lambda d: d["logical_switches"][1].update(vni=5001),
     "logical_switches[1] 'app': vni 5001 is already used by logical switch 'web'"),
    (lambda d: d["logical_switches"][0].update(subnet="10.1.1.0"),
     f"{SW0}: subnet '10.1.1.0' is not an IPv4 subnet like 10.1.1.0/24"),
    (lambda d: d["logical_switches"][0].update(subnet="10.1.1.1/24"),
     f"{SW0}: subnet 10.1.1.1/24 has host bits set: give the network address, e.g. 10.1.1.0/24"),
    # routers
    (lambda d: d["logical_routers"][0].pop("interfaces"), "logical_routers[0] 'r1': missing required key 'interfaces'"),
    (lambda d: d["logical_routers"][0].update(interfaces=[]), "logical_routers[0] 'r1': at least one interface is "
                                                               "required"),
    (lambda d: d["logical_routers"][0]["interfaces"][0].update(switch="db"),
     f"{LIF0}: unknown logical switch 'db' (known: app, web)"),
    (lambda d: d["logical_routers"][0]["interfaces"][0].update(ip="10.1.2.1"),
     f"{LIF0}: ip 10.1.2.1 is outside switch 'web' subnet 10.1.1.0/24"),
    (lambda d: d["logical_routers"][0]["interfaces"][0].update(ip="10.1.1.255"),
     f"{LIF0}: ip 10.1.1.255 is the broadcast address of switch 'web' subnet 10.1.1.0/24"),
    (lambda d: d["logical_routers"][0]["interfaces"][0].update(ip="10.1.1.0"),
     f"{LIF0}: ip 10.1.1.0 is the network address of switch 'web' subnet 10.1.1.0/24"),
    (lambda d: d["logical_routers"].append({"name": "r2", "interfaces": [{"switch": "web", "ip": "10.1.1.2"}]}),
     "logical_routers[1] 'r2' interfaces[0]: switch 'web' already has a gateway: logical_routers[0] 'r1' "
     "interfaces[0] (one switch, one router interface)"),
    (lambda d: d["logical_routers"].append({"name": "r1", "interfaces": [{"switch": "app", "ip": "10.1.2.2"}]}),
     "logical_routers[1] 'r1': name 'r1' is already used"),
    (lambda d: d["logical_routers"][0]["routes"][0].update(next_hop="10.1.1.1"),
     f"{ROUTE0}: next_hop 10.1.1.1 is an interface IP of router 'r1' itself"),
    (lambda d: d["logical_routers"][0]["routes"][0].update(next_hop="10.9.9.9"),
     f"{ROUTE0}: next hop 10.9.9.9 is unreachable: it is not inside any subnet connected to 'r1' "
     "(10.1.1.0/24, 10.1.2.0/24)"),
    (lambda d: d["logical_routers"][0]["routes"][0].update(prefix="10.1.1.0/24"),
     f"{ROUTE0}: prefix 10.1.1.0/24 is a connected subnet of 'r1': a static route cannot replace it"),
    (lambda d: d["logical_routers"][0]["routes"].append({"prefix": "0.0.0.0/0", "next_hop": "10.1.1.254"}),
     "logical_routers[0] 'r1' routes[1]: prefix 0.0.0.0/0 already has a route on 'r1'"),
    (lambda d: d["logical_routers"][0]["routes"][0].update(next_hop="ten"),
     f"{ROUTE0}: next_hop 'ten' is not an IPv4 address"),
    # static bindings
    (lambda d: d["static_bindings"][0].update(ip="10.1.1.1"),
     "static_bindings[0]: ip 10.1.1.1 on switch 'web' is already used by router 'r1'"),
    (lambda d: d["static_bindings"][0].update(mac=DEFAULT_VMAC),
     f"static_bindings[0]: mac {DEFAULT_VMAC} is the routers' vMAC"),
    (lambda d: d["static_bindings"].append({"switch": "web", "ip": "10.1.1.51", "mac": "00:50:56:00:99:01"}),
     "static_bindings[1]: mac 00:50:56:00:99:01 on switch 'web' is already used by static binding 10.1.1.50"),
    # logical ports
    (lambda d: d["logical_ports"][1].update(name="vm1"), "logical_ports[1] 'vm1': name 'vm1' is already used"),
    (lambda d: d["logical_ports"][0].update(switch="db"), f"{PORT0}: unknown logical switch 'db' (known: app, web)"),
    (lambda d: d["logical_ports"][0].update(ips=["10.1.2.11"]),
     f"{PORT0}: ip 10.1.2.11 is outside switch 'web' subnet 10.1.1.0/24"),
    (lambda d: d["logical_ports"][0].update(ips=["10.1.1.50"]),
     f"{PORT0}: ip 10.1.1.50 on switch 'web' is already used by static binding 10.1.1.50"),
    (lambda d: d["logical_ports"][1].update(ips=["10.1.1.11"]),
     "logical_ports[1] 'vm9': ip 10.1.1.11 on switch 'web' is already used by port 'vm1'"),
    (lambda d: d["logical_ports"][1].update(mac="00:50:56:00:00:01"),
     "logical_ports[1] 'vm9': mac 00:50:56:00:00:01 on switch 'web' is already used by port 'vm1'"),
    (lambda d: d["logical_ports"][0].update(mac="01:00:5e:00:00:01"),
     f"{PORT0}: mac 01:00:5e:00:00:01 is not a unicast NIC address"),
    (lambda d: d["logical_ports"][0].update(learn="yes"), f"{PORT0}: learn must be true or false, got 'yes'"),
    (lambda d: d["logical_ports"][0].update(trusted=1), f"{PORT0}: trusted must be true or false, got 1"),
    (lambda d: d["logical_ports"][0].update(ip="10.1.1.11"),
     f"{PORT0}: unknown key 'ip' (allowed: name, switch, mac, ips, learn, trusted)"),
]


@pytest.mark.parametrize("edit, message", RULES, ids=[m.split(":")[0] + f" #{i}" for i, (_, m) in enumerate(RULES)])
def test_each_broken_rule_names_its_item_and_problem(edit, message):
    said = broken(edit)
    assert said.startswith(message), said
