"""Topology files: defaults are filled in, and every mistake gets a clear message."""
import re
import copy
import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import yaml

from mininet_topos.topology import TopologyError, load_topology, parse_topology

TOPOS = Path(__file__).resolve().parents[2] / "mininet_topos"
DELETE = object()


def base() -> dict:
    """A small seed-like overlay topology that is valid as it stands."""
    return {
        "name": "test",
        "hypervisors": [{"name": "hv1"}, {"name": "hv2"}],
        "logical_switches": [
            {"name": "web", "vni": 5001, "subnet": "10.1.1.0/24"},
            {"name": "app", "vni": 5002, "subnet": "10.1.2.0/24"},
        ],
        "logical_routers": [{
            "name": "dlr1",
            "interfaces": [{"switch": "web", "ip": "10.1.1.1"}, {"switch": "app", "ip": "10.1.2.1"}],
            "routes": [{"prefix": "0.0.0.0/0", "next_hop": "10.1.1.254"}],
        }],
        "vms": [
            {"name": "vm1", "hypervisor": "hv1", "switch": "web", "ip": "10.1.1.11"},
            {"name": "vm2", "hypervisor": "hv2", "switch": "web", "ip": "10.1.1.12",
             "mac": "00:50:56:AA:00:02"},
            {"name": "vm3", "hypervisor": "hv2", "switch": "app", "ip": "10.1.2.13"},
        ],
        "static_bindings": [{"switch": "web", "ip": "10.1.1.50", "mac": "00:50:56:00:99:01"}],
    }


def physical() -> dict:
    data = base()
    data["kind"] = "physical"
    for switch, vlan in zip(data["logical_switches"], (101, 102)):
        del switch["vni"]
        switch["vlan"] = vlan
    return data


def edit(data: dict, path: str, value) -> None:
    """Set (or DELETE, or append with '+') the value at a dotted path like 'vms.0.ip'."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    for key in parents:
        data = data[key]
    if value is DELETE:
        del data[last]
    elif last == "+":
        data.append(value)
    else:
        data[last] = value


# --- the happy path ----------------------------------------------------------

def test_defaults_are_filled_in():
    topo = parse_topology(base())
    assert topo.kind == "overlay" and topo.source == "<dict>"
    assert topo.underlay == IPv4Network("192.168.50.0/24")
    assert topo.management == IPv4Network("169.254.77.0/24")
    assert topo.controller_ip == IPv4Address("169.254.77.1")
    assert topo.vmac == "02:50:56:56:44:52"
    assert [(hv.vtep_ip, hv.mgmt_ip) for hv in topo.hypervisors] == [
        (IPv4Address("192.168.50.1"), IPv4Address("169.254.77.2")),
        (IPv4Address("192.168.50.2"), IPv4Address("169.254.77.3")),
    ]
    assert [vm.mac for vm in topo.vms] == [
        "00:50:56:00:00:01", "00:50:56:aa:00:02", "00:50:56:00:00:03"]
    assert topo.switch("web").vni == 5001 and topo.switch("web").vlan is None


def test_explicit_values_win_over_defaults():
    data = base()
    data.update(underlay="172.16.0.0/16", management="10.255.0.0/24", vmac="02:AA:BB:CC:DD:EE")
    data["hypervisors"][1]["vtep"] = "172.16.9.9"
    topo = parse_topology(data)
    assert topo.hypervisor("hv1").vtep_ip == IPv4Address("172.16.0.1")
    assert topo.hypervisor("hv2").vtep_ip == IPv4Address("172.16.9.9")
    assert topo.hypervisor("hv2").mgmt_ip == IPv4Address("10.255.0.3")
    assert topo.controller_ip == IPv4Address("10.255.0.1")
    assert topo.vmac == "02:aa:bb:cc:dd:ee"


def test_gateway_lookups_and_placement():
    topo = parse_topology(base())
    assert topo.gateway(topo.vm("vm1")) == IPv4Address("10.1.1.1")
    assert topo.gateway(topo.vm("vm3")) == IPv4Address("10.1.2.1")
    assert [vm.name for vm in topo.vms_on("hv2")] == ["vm2", "vm3"]
    assert topo.vms_on("nohost") == ()
    assert topo.routers[0].routes[0].next_hop == IPv4Address("10.1.1.254")
    with pytest.raises(KeyError):
        topo.vm("vm9")
    with pytest.raises(KeyError):
        topo.hypervisor("vm1")


def test_no_router_means_no_gateway():
    data = base()
    del data["logical_routers"]
    topo = parse_topology(data)
    assert topo.routers == () and topo.gateway(topo.vm("vm1")) is None


def test_optional_sections_may_be_empty_in_yaml():
    data = base()
    data.update(logical_routers=None, static_bindings=None, vms=None)
    topo = parse_topology(data)
    assert topo.routers == () and topo.static_bindings == () and topo.vms == ()


@pytest.mark.parametrize("make", [base, physical])
def test_to_dict_round_trips(make):
    topo = parse_topology(make(), source="x.yaml")
    again = parse_topology(json.loads(json.dumps(topo.to_dict())), source="x.yaml")
    assert again == topo
    assert topo.to_dict()["hypervisors"][0] == {"name": "hv1", "vtep": "192.168.50.1"}


def test_round_trip_through_a_yaml_file(tmp_path):
    path = tmp_path / "round.yaml"
    topo = parse_topology(base(), source=str(path))
    path.write_text(yaml.safe_dump(topo.to_dict()))
    assert load_topology(path) == topo


def test_vni_range_edges_are_allowed():
    data = base()
    edit(data, "logical_switches.0.vni", 4096)
    edit(data, "logical_switches.1.vni", 2**24 - 1)
    assert [sw.vni for sw in parse_topology(data).switches] == [4096, 16777215]


def test_same_subnet_and_ip_on_two_switches_is_fine():
    data = base()
    edit(data, "logical_switches.1.subnet", "10.1.1.0/24")
    edit(data, "vms.2.ip", "10.1.1.11")          # same IP as vm1, but on app
    edit(data, "logical_routers", DELETE)
    topo = parse_topology(data)
    assert topo.vm("vm1").ip == topo.vm("vm3").ip


def test_default_mac_uses_both_index_bytes():
    data = base()
    data["logical_switches"][0]["subnet"] = "10.1.0.0/16"
    del data["logical_routers"], data["static_bindings"]
    data["vms"] = [{"name": f"vm{i}", "hypervisor": "hv1", "switch": "web",
                    "ip": str(IPv4Address("10.1.10.0") + i)} for i in range(1, 301)]
    topo = parse_topology(data)
    assert topo.vm("vm256").mac == "00:50:56:00:01:00"
    assert topo.vm("vm300").mac == "00:50:56:00:01:2c"


def test_physical_kind_uses_vlans():
    topo = parse_topology(physical())
    assert topo.kind == "physical"
    assert [(sw.vlan, sw.vni) for sw in topo.switches] == [(101, None), (102, None)]


def test_shipped_seed_topology():
    topo = load_topology(TOPOS / "seed.yaml")
    assert topo.name == "seed" and [hv.name for hv in topo.hypervisors] == ["hv1", "hv2"]
    assert {sw.name: sw.vni for sw in topo.switches} == {"web": 5001, "app": 5002}
    assert {vm.name: (vm.hypervisor, vm.switch, str(vm.ip)) for vm in topo.vms} == {
        "vm1": ("hv1", "web", "10.1.1.11"), "vm2": ("hv2", "web", "10.1.1.12"),
        "vm3": ("hv2", "app", "10.1.2.13"), "vm4": ("hv1", "app", "10.1.2.14")}
    assert topo.gateway(topo.vm("vm3")) == IPv4Address("10.1.2.1")


def test_shipped_physical_topology_matches_seed_placement():
    topo, seed = load_topology(TOPOS / "physical.yaml"), load_topology(TOPOS / "seed.yaml")
    assert topo.kind == "physical"
    assert {sw.name: sw.vlan for sw in topo.switches} == {"web": 101, "app": 102}
    assert [r.name for r in topo.routers] == ["r1"]
    assert topo.vms == seed.vms


def test_shipped_l2_topology_reuses_ips_on_isolated_switches():
    topo = load_topology(TOPOS / "l2.yaml")
    assert topo.routers == () and len(topo.hypervisors) == 3
    assert topo.switch("blue").subnet == topo.switch("red").subnet
    assert topo.vm("r1").ip == topo.vm("b1").ip and topo.vm("r1").switch == "red"
    assert topo.static_bindings[0].mac == "00:50:56:00:99:01"


# --- every rule, one case each -----------------------------------------------

def case(why, edits, item, problem, make=base):
    return pytest.param(make, edits, item, problem, id=why)


MGMT = "169.254.77.0/24"
ERRORS = [
    # top level and structure
    case("typo in a top-level key", {"hypervsiors": []}, "top level",
         "unknown key 'hypervsiors' (did you mean 'hypervisors'?)"),
    case("unknown nested key", {"vms.0.adress": "x"}, "vms[0] 'vm1'", "unknown key 'adress'"),
    case("missing name", {"name": DELETE}, "top level", "missing required key 'name'"),
    case("missing hypervisors", {"hypervisors": DELETE}, "top level",
         "missing required key 'hypervisors'"),
    case("no hypervisors", {"hypervisors": []}, "hypervisors", "at least one hypervisor is required"),
    case("no switches", {"logical_switches": []}, "logical_switches",
         "at least one logical switch is required"),
    case("section not a list", {"hypervisors": {"name": "hv1"}}, "hypervisors",
         "must be a list, got a mapping"),
    case("entry not a mapping", {"hypervisors.0": "hv1"}, "hypervisors[0]",
         "must be a mapping, got the string 'hv1'"),
    case("required key with no value", {"vms.0.ip": None}, "vms[0] 'vm1'", "key 'ip' has no value"),
    case("unknown kind", {"kind": "underlay"}, "top level", "kind 'underlay' is unknown"),
    # names
    case("upper-case name", {"logical_switches.0.name": "Web"}, "logical_switches[0]",
         "name 'Web' is not a valid name: use 1-8 lower-case letters or digits"),
    case("name too long", {"hypervisors.1.name": "hypervisor2"}, "hypervisors[1]",
         "name 'hypervisor2' is not a valid name"),
    case("name not a string", {"vms.2.name": 3}, "vms[2]", "name must be a string, got the number 3"),
    case("topology name", {"name": "my-lab"}, "top level", "name 'my-lab' is not a valid name"),
    case("name with a newline", {"vms.0.name": "vm1\n"}, "vms[0]", "name 'vm1\\n' is not a valid name"),
    case("MAC with a newline", {"vms.1.mac": "00:50:56:aa:00:02\n"}, "vms[1] 'vm2'", "is not a MAC address"),
    case("VM named like a hypervisor", {"vms.0.name": "hv2"}, "vms[0] 'hv2'",
         "name 'hv2' is already used by hypervisors[1] 'hv2'"),
    case("duplicate hypervisor", {"hypervisors.1.name": "hv1"}, "hypervisors[1] 'hv1'",
         "name 'hv1' is already used by hypervisors[0] 'hv1'"),
    case("duplicate switch", {"logical_switches.1.name": "web"}, "logical_switches[1] 'web'",
         "name 'web' is already used by logical_switches[0] 'web'"),
    case("duplicate router", {"logical_routers.+": {"name": "dlr1", "interfaces": []}},
         "logical_routers[1] 'dlr1'", "name 'dlr1' is already used by logical_routers[0] 'dlr1'"),
    # addresses, subnets, MACs
    case("bad IP", {"vms.0.ip": "10.1.1.300"}, "vms[0] 'vm1'", "ip '10.1.1.300' is not an IPv4 address"),
    case("IPv6", {"vms.0.ip": "2001:db8::1"}, "vms[0] 'vm1'", "is not an IPv4 address"),
    case("subnet with host bits", {"logical_switches.0.subnet": "10.1.1.5/24"},
         "logical_switches[0] 'web'",
         "subnet 10.1.1.5/24 has host bits set: give the network address, e.g. 10.1.1.0/24"),
    case("subnet without prefix", {"logical_switches.0.subnet": "10.1.1.0"},
         "logical_switches[0] 'web'", "subnet '10.1.1.0' is not an IPv4 subnet like 10.1.1.0/24"),
    case("bad MAC", {"vms.1.mac": "00:50:56:zz:00:02"}, "vms[1] 'vm2'",
         "mac '00:50:56:zz:00:02' is not a MAC address: write six hex pairs"),
    case("MAC read as a number", {"vms.1.mac": 3723}, "vms[1] 'vm2'",
         "mac was read by YAML as the number 3723: put the MAC in quotes"),
    case("multicast MAC", {"vms.1.mac": "01:00:5E:00:00:01"}, "vms[1] 'vm2'",
         "mac 01:00:5e:00:00:01 is a multicast MAC"),
    case("all-zero MAC", {"static_bindings.0.mac": "00:00:00:00:00:00"}, "static_bindings[0]",
         "mac 00:00:00:00:00:00 is all zeros"),
    case("multicast vMAC", {"vmac": "03:50:56:56:44:52"}, "top level", "vmac 03:50:56:56:44:52 is a multicast MAC"),
    # VNIs and VLANs
    case("VNI not a number", {"logical_switches.0.vni": "abc"}, "logical_switches[0] 'web'",
         "vni must be a whole number, got the string 'abc'"),
    case("VNI is a boolean", {"logical_switches.0.vni": True}, "logical_switches[0] 'web'",
         "vni must be a whole number, got the boolean true"),
    case("VNI in VLAN range", {"logical_switches.0.vni": 4095}, "logical_switches[0] 'web'",
         "vni 4095 is out of range 4096..16777215"),
    case("VNI zero", {"logical_switches.0.vni": 0}, "logical_switches[0] 'web'", "vni 0 is out of range"),
    case("VNI above 24 bits", {"logical_switches.1.vni": 2**24}, "logical_switches[1] 'app'",
         "vni 16777216 is out of range 4096..16777215"),
    case("missing VNI", {"logical_switches.0.vni": DELETE}, "logical_switches[0] 'web'",
         "missing required key 'vni' (kind overlay gives each switch a vni)"),
    case("duplicate VNI", {"logical_switches.1.vni": 5001}, "logical_switches[1] 'app'",
         "vni 5001 is already used by logical_switches[0] 'web'"),
    case("VLAN on an overlay switch", {"logical_switches.0.vlan": 10}, "logical_switches[0] 'web'",
         "vlan is not used when kind is overlay: give vni instead"),
    case("VNI on a physical switch", {"logical_switches.0.vni": 5001}, "logical_switches[0] 'web'",
         "vni is not used when kind is physical: give vlan instead", make=physical),
    case("VLAN zero", {"logical_switches.0.vlan": 0}, "logical_switches[0] 'web'",
         "vlan 0 is out of range 1..4094", make=physical),
    case("VLAN 4095", {"logical_switches.0.vlan": 4095}, "logical_switches[0] 'web'",
         "vlan 4095 is out of range 1..4094", make=physical),
    case("duplicate VLAN", {"logical_switches.1.vlan": 101}, "logical_switches[1] 'app'",
         "vlan 101 is already used by logical_switches[0] 'web'", make=physical),
    # underlay, management, VTEPs
    case("underlay overlaps management", {"management": "192.168.0.0/16"}, "top level",
         "underlay 192.168.50.0/24 overlaps management 192.168.0.0/16"),
    case("switch overlaps underlay", {"logical_switches.0.subnet": "192.168.50.0/25"},
         "logical_switches[0] 'web'", "subnet 192.168.50.0/25 overlaps the underlay 192.168.50.0/24"),
    case("switch overlaps management", {"logical_switches.1.subnet": "169.254.0.0/16"},
         "logical_switches[1] 'app'", f"subnet 169.254.0.0/16 overlaps the management {MGMT}"),
    case("management too small", {"management": "169.254.77.0/30"}, "top level",
         "management 169.254.77.0/30 is too small for the controller and 2 hypervisors"),
    case("VTEP outside underlay", {"hypervisors.0.vtep": "10.9.9.9"}, "hypervisors[0] 'hv1'",
         "vtep 10.9.9.9 is outside the underlay 192.168.50.0/24"),
    case("VTEP is network address", {"hypervisors.0.vtep": "192.168.50.0"}, "hypervisors[0] 'hv1'",
         "vtep 192.168.50.0 is the network address of the underlay"),
    case("VTEP is broadcast", {"hypervisors.1.vtep": "192.168.50.255"}, "hypervisors[1] 'hv2'",
         "vtep 192.168.50.255 is the broadcast address of the underlay"),
    case("duplicate VTEP", {"hypervisors.1.vtep": "192.168.50.1"}, "hypervisors[1] 'hv2'",
         "vtep 192.168.50.1 is already used by hypervisors[0] 'hv1'"),
    case("no room for default VTEP", {"underlay": "192.168.50.0/31"}, "hypervisors[0] 'hv1'",
         "underlay 192.168.50.0/31 has no room for a default vtep: give vtep explicitly"),
    # VMs
    case("VM on unknown hypervisor", {"vms.2.hypervisor": "hv7"}, "vms[2] 'vm3'",
         "unknown hypervisor 'hv7' (known: hv1, hv2)"),
    case("VM on unknown switch", {"vms.2.switch": "db"}, "vms[2] 'vm3'",
         "unknown switch 'db' (known: app, web)"),
    case("VM IP outside its subnet", {"vms.2.ip": "10.2.0.5", "vms.2.switch": "web"}, "vms[2] 'vm3'",
         "ip 10.2.0.5 is outside switch 'web' subnet 10.1.1.0/24"),
    case("VM on network address", {"vms.0.ip": "10.1.1.0"}, "vms[0] 'vm1'",
         "ip 10.1.1.0 is the network address of switch 'web' subnet 10.1.1.0/24"),
    case("VM on broadcast address", {"vms.0.ip": "10.1.1.255"}, "vms[0] 'vm1'",
         "ip 10.1.1.255 is the broadcast address of switch 'web' subnet 10.1.1.0/24"),
    case("duplicate IP on one switch", {"vms.1.ip": "10.1.1.11"}, "vms[1] 'vm2'",
         "ip 10.1.1.11 on switch 'web' is already used by vms[0] 'vm1'"),
    case("duplicate MAC", {"vms.2.mac": "00:50:56:aa:00:02"}, "vms[2] 'vm3'",
         "mac 00:50:56:aa:00:02 is already used by vms[1] 'vm2'"),
    case("VM MAC taken by a binding", {"vms.0.mac": "00:50:56:00:99:01"}, "static_bindings[0]",
         "mac 00:50:56:00:99:01 is already used by vms[0] 'vm1'"),
    case("default MAC collides", {"vms.1.mac": "00:50:56:00:00:03"}, "vms[2] 'vm3'",
         "default mac 00:50:56:00:00:03 (from its place in vms) is already used by vms[1] 'vm2': "
         "give this VM a mac explicitly"),
    # static bindings
    case("binding on unknown switch", {"static_bindings.0.switch": "db"}, "static_bindings[0]",
         "unknown switch 'db'"),
    case("binding outside subnet", {"static_bindings.0.ip": "10.1.2.50"}, "static_bindings[0]",
         "ip 10.1.2.50 is outside switch 'web' subnet 10.1.1.0/24"),
    case("binding IP held by a VM", {"static_bindings.0.ip": "10.1.1.12"}, "static_bindings[0]",
         "ip 10.1.1.12 on switch 'web' is already used by vms[1] 'vm2'"),
    case("two bindings, one IP",
         {"static_bindings.+": {"switch": "web", "ip": "10.1.1.50", "mac": "00:50:56:00:99:02"}},
         "static_bindings[1]", "ip 10.1.1.50 on switch 'web' is already used by static_bindings[0]"),
    case("two bindings, one MAC",
         {"static_bindings.+": {"switch": "app", "ip": "10.1.2.50", "mac": "00:50:56:00:99:01"}},
         "static_bindings[1]", "mac 00:50:56:00:99:01 is already used by static_bindings[0]"),
    # router interfaces (LIFs)
    case("LIF on unknown switch", {"logical_routers.0.interfaces.1.switch": "db"},
         "logical_routers[0] 'dlr1' interfaces[1]", "unknown switch 'db'"),
    case("LIF outside subnet", {"logical_routers.0.interfaces.1.ip": "10.1.1.1"},
         "logical_routers[0] 'dlr1' interfaces[1]",
         "ip 10.1.1.1 is outside switch 'app' subnet 10.1.2.0/24"),
    case("LIF IP held by a VM", {"logical_routers.0.interfaces.0.ip": "10.1.1.11"},
         "logical_routers[0] 'dlr1' interfaces[0]",
         "ip 10.1.1.11 on switch 'web' is already used by vms[0] 'vm1'"),
    case("LIF IP held by a binding", {"logical_routers.0.interfaces.0.ip": "10.1.1.50"},
         "logical_routers[0] 'dlr1' interfaces[0]",
         "ip 10.1.1.50 on switch 'web' is already used by static_bindings[0]"),
    case("two LIFs on one switch", {"logical_routers.0.interfaces.+": {"switch": "web", "ip": "10.1.1.2"}},
         "logical_routers[0] 'dlr1' interfaces[2]",
         "switch 'web' already has a gateway: logical_routers[0] 'dlr1' interfaces[0] "
         "(one LIF per switch)"),
    case("switch on two routers",
         {"logical_routers.+": {"name": "dlr2", "interfaces": [{"switch": "app", "ip": "10.1.2.2"}]}},
         "logical_routers[1] 'dlr2' interfaces[0]",
         "switch 'app' already has a gateway: logical_routers[0] 'dlr1' interfaces[1] "
         "(one switch, one router)"),
    case("router without interfaces", {"logical_routers.0.interfaces": []},
         "logical_routers[0] 'dlr1' interfaces", "at least one interface is required"),
    # static routes
    case("route prefix with host bits", {"logical_routers.0.routes.0.prefix": "10.9.0.1/16"},
         "logical_routers[0] 'dlr1' routes[0]",
         "prefix 10.9.0.1/16 has host bits set: give the network address, e.g. 10.9.0.0/16"),
    case("next hop unreachable", {"logical_routers.0.routes.0.next_hop": "10.9.9.9"},
         "logical_routers[0] 'dlr1' routes[0]",
         "next hop 10.9.9.9 is unreachable: it is not inside any subnet connected to 'dlr1' "
         "(10.1.1.0/24, 10.1.2.0/24)"),
    case("next hop is the router itself", {"logical_routers.0.routes.0.next_hop": "10.1.2.1"},
         "logical_routers[0] 'dlr1' routes[0]",
         "next_hop 10.1.2.1 is an interface IP of router 'dlr1' itself"),
    case("routes not a list", {"logical_routers.0.routes": "default"},
         "logical_routers[0] 'dlr1' routes", "must be a list, got the string 'default'"),
]


@pytest.mark.parametrize("make, edits, item, problem", ERRORS)
def test_each_rule_names_file_item_and_problem(make, edits, item, problem):
    data = make()
    for path, value in edits.items():
        edit(data, path, value)
    with pytest.raises(TopologyError) as error:
        parse_topology(data, source="lab.yaml")
    message = str(error.value)
    assert message.startswith(f"lab.yaml: {item}: "), message
    assert problem in message


def test_file_errors_name_the_file(tmp_path):
    data = base()
    edit(data, "vms.2.ip", "10.2.0.5")
    edit(data, "vms.2.switch", "web")
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TopologyError) as error:
        load_topology(path)
    assert str(error.value) == (
        f"{path}: vms[2] 'vm3': ip 10.2.0.5 is outside switch 'web' subnet 10.1.1.0/24")


@pytest.mark.parametrize("data, got", [([], "a list"), ("seed", "the string 'seed'"),
                                        (None, "nothing"), (5, "the number 5")])
def test_top_level_must_be_a_mapping(data, got):
    with pytest.raises(TopologyError, match=f"^lab.yaml: top level: must be a mapping, got {got}"):
        parse_topology(data, source="lab.yaml")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: seed\nhypervisors: [hv1\nlogical_switches: []\n")
    with pytest.raises(TopologyError) as error:
        load_topology(path)
    message = str(error.value)
    assert message.startswith(f"{path}: line ") and "YAML syntax error" in message
    assert "Traceback" not in message


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(TopologyError, match="nope.yaml: cannot read file: No such file"):
        load_topology(path)


def test_directory_is_not_a_topology(tmp_path):
    with pytest.raises(TopologyError, match="cannot read file"):
        load_topology(tmp_path)


def _every_path(node, prefix=""):
    """Dotted paths to every value inside a nested dict/list."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, (dict, list)):
            yield from _every_path(value, path + ".")


@pytest.mark.parametrize("make", [base, physical])
def test_any_wrong_type_anywhere_is_a_topology_error(make):
    """Swap every value for every YAML type: it parses, or fails as TopologyError only."""
    failures = 0
    for path in list(_every_path(make())):
        for junk in (None, [], {}, "x", 7, True, 1.5, [{}], {"name": "x"}, DELETE):
            data = make()
            edit(data, path, junk)
            try:
                parse_topology(data, source="fuzz.yaml")
            except TopologyError as error:
                failures += 1
                assert str(error).startswith("fuzz.yaml: "), str(error)
    assert failures > 100


@pytest.mark.parametrize("routes, problem", [
    ([{"prefix": "10.1.2.0/24", "next_hop": "10.1.1.254"}], "prefix 10.1.2.0/24 is a connected subnet of 'dlr1'"),
    ([{"prefix": "0.0.0.0/0", "next_hop": "10.1.1.254"}, {"prefix": "0.0.0.0/0", "next_hop": "10.1.2.254"}],
     "prefix 0.0.0.0/0 already has a route on 'dlr1'"),
])
def test_a_static_route_may_not_shadow_a_connected_subnet_or_another_route(routes, problem):
    data = {"name": "t", "hypervisors": [{"name": "hv1"}],
            "logical_switches": [{"name": "web", "vni": 5001, "subnet": "10.1.1.0/24"},
                                 {"name": "app", "vni": 5002, "subnet": "10.1.2.0/24"}],
            "logical_routers": [{"name": "dlr1", "interfaces": [{"switch": "web", "ip": "10.1.1.1"},
                                                                {"switch": "app", "ip": "10.1.2.1"}],
                                 "routes": routes}]}
    with pytest.raises(TopologyError, match=re.escape(problem)):
        parse_topology(data, "r.yaml")


def test_duplicate_key_names_key_and_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: dup\nhypervisors:\n  - name: hv1\nlogical_switches:\n"
                    "  - {name: web, vni: 5001, subnet: 10.1.1.0/24}\n"
                    "vms: []\nhypervisors: [{name: hv2}]\n")
    with pytest.raises(TopologyError) as e:
        load_topology(path)
    assert str(e.value).startswith(f"{path}: line 7, column 1: duplicate key 'hypervisors' (first given on line 2)")


def test_a_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("name: m\nhypervisors: [{name: hv1}]\nsw: &sw {name: web, vni: 5001, subnet: 10.1.1.0/24}\n"
                    "logical_switches:\n  - {<<: *sw, vni: 5002}\n")
    with pytest.raises(TopologyError, match="unknown key 'sw'"):   # the anchor's key is not a topology key
        load_topology(path)
