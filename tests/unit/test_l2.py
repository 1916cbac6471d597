"""Logical switching flows: what each hypervisor gets, checked flow by flow and by replaying
packets through a fake OpenFlow table (Faucet's fakeoftable, much simplified)."""
import dataclasses
import pytest

from controller.flows import BROADCAST, ETH_ARP, ETH_IP, MULTICAST, Flow, Goto, Move, Output, SetField
from controller.l2 import l2_flows
from controller.model import Attachment, Hypervisor, Network
from controller.tables import Table
from tests.labnet import network, port_of, port_security_open

BLUE, RED = 5001, 5002
STATIC_IP, STATIC_MAC = "10.1.1.50", "00:50:56:00:99:01"
UNKNOWN_MAC = "00:50:56:00:77:77"
# Two switches share one subnet; hv1 hosts both, hv2 only blue, hv3 only red.
TOPO = {
    "name": "t",
    "hypervisors": [{"name": "hv1"}, {"name": "hv2"}, {"name": "hv3"}],
    "logical_switches": [{"name": "blue", "vni": BLUE, "subnet": "10.1.1.0/24"},
                         {"name": "red", "vni": RED, "subnet": "10.1.1.0/24"}],
    "vms": [{"name": "b1", "hypervisor": "hv1", "switch": "blue", "ip": "10.1.1.11"},
            {"name": "r1", "hypervisor": "hv1", "switch": "red", "ip": "10.1.1.11"},
            {"name": "b4", "hypervisor": "hv1", "switch": "blue", "ip": "10.1.1.14"},
            {"name": "b2", "hypervisor": "hv2", "switch": "blue", "ip": "10.1.1.12"},
            {"name": "r3", "hypervisor": "hv3", "switch": "red", "ip": "10.1.1.13"}],
    "static_bindings": [{"switch": "blue", "ip": STATIC_IP, "mac": STATIC_MAC}],
}
TUNNEL = {"hv1": 101, "hv2": 102, "hv3": 103}   # ofport of the tunnel *to* that hypervisor


@pytest.fixture
def net() -> Network:
    """hv1: b1=1, r1=2, b4=3; hv2: b2=1; hv3: r3=1. Tunnels in full mesh, on purpose: which
    VTEPs get a VNI's floods must follow the VNI, not the tunnels that happen to exist."""
    _, net = network(TOPO, iface="t-{vm}")     # every VM's port has its configured IP
    for hv in net.hypervisors.values():
        hv.tunnels = {o: port for o, port in TUNNEL.items() if o != hv.name}
    return net


def vm(net, name) -> tuple[Hypervisor, Attachment]:
    return port_of(net, name)


PORT_SECURITY_OPEN = port_security_open()


def flows(net, hv_name) -> list[Flow]:
    return l2_flows(net, net.hypervisors[hv_name]) + [PORT_SECURITY_OPEN]


def find(fs, table, **match) -> Flow:
    [flow] = [f for f in fs if f.table == table and dict(f.match) == match]
    return flow


def outputs(flow) -> set:
    return {a.port for a in flow.actions if isinstance(a, Output)}


# --- the fake OpenFlow table ---------------------------------------------------------------

def _hit(pkt, field, want) -> bool:
    if field not in pkt:
        return False
    if isinstance(want, tuple):                       # (value, mask), MACs
        value, mask = (int(m.replace(":", ""), 16) for m in want)
        return int(pkt[field].replace(":", ""), 16) & mask == value & mask
    return pkt[field] == want


def walk(fs, **pkt) -> tuple[list, dict]:
    """Replay `pkt` from table 0: the ports it leaves by, and the packet as rewritten."""
    pkt = {"reg0": 0, "tunnel_id": 0, **pkt}
    out, table = [], Table.CLASSIFY
    while table is not None:
        hits = [f for f in fs if f.table == table and all(_hit(pkt, k, v) for k, v in f.match)]
        assert hits, f"table {table.name}: no flow, not even a miss flow, for {pkt}"
        top = [f for f in hits if f.priority == max(h.priority for h in hits)]
        assert len(top) == 1, f"ambiguous: {[f.ofctl() for f in top]}"
        table = None
        for a in top[0].actions:
            if isinstance(a, SetField):
                pkt[a.field] = a.value
            elif isinstance(a, Move):
                pkt[a.dst] = pkt[a.src]
            elif isinstance(a, Output) and a.port != pkt["in_port"]:   # OpenFlow drops those
                out.append(a.port)
            elif isinstance(a, Goto):
                assert a.table > top[0].table, "goto_table must go forward"
                table = a.table
    return out, pkt


def test_fake_table_matches_masks_and_takes_the_highest_priority():
    fs = [Flow.of(Table.CLASSIFY, 10, {"eth_dst": MULTICAST}, [Output(7)], "t"),
          Flow.of(Table.CLASSIFY, 20, {"eth_dst": BROADCAST, "in_port": 1}, [Output(8)], "t"),
          Flow.of(Table.CLASSIFY, 0, {}, [Output(9)], "t")]
    assert walk(fs, in_port=1, eth_dst="01:00:5e:00:00:fb")[0] == [7]
    assert walk(fs, in_port=1, eth_dst=BROADCAST)[0] == [8]
    assert walk(fs, in_port=2, eth_dst=BROADCAST)[0] == [7]
    assert walk(fs, in_port=1, eth_dst="00:50:56:00:00:01")[0] == [9]


# --- flow by flow ----------------------------------------------------------------------------

def test_vm_port_ingress_sets_the_vni_and_goes_to_port_security(net):
    fs = flows(net, "hv1")
    assert find(fs, Table.CLASSIFY, in_port=1).actions == (SetField("tunnel_id", BLUE), Goto(Table.PORT_SECURITY))
    assert find(fs, Table.CLASSIFY, in_port=2).actions == (SetField("tunnel_id", RED), Goto(Table.PORT_SECURITY))


def test_tunnel_ingress_marks_the_packet_and_skips_to_l2_lookup(net):
    fs = flows(net, "hv1")
    for port in (102, 103):
        assert find(fs, Table.CLASSIFY, in_port=port).actions == (SetField("reg0", 1), Goto(Table.L2_LOOKUP))


def test_known_local_mac_goes_to_its_port(net):
    _, b4 = vm(net, "b4")
    assert find(flows(net, "hv1"), Table.L2_LOOKUP, tunnel_id=BLUE, eth_dst=b4.mac).actions == (Output(3),)


def test_remote_mac_goes_to_the_tunnel_of_its_hypervisor_only_from_a_vm(net):
    _, b2 = vm(net, "b2")
    flow = find(flows(net, "hv1"), Table.L2_LOOKUP, reg0=0, tunnel_id=BLUE, eth_dst=b2.mac)
    assert flow.actions == (Output(TUNNEL["hv2"]),)


def test_flood_from_a_vm_replicates_to_exactly_the_vteps_of_its_vni(net):
    fs = flows(net, "hv1")
    assert outputs(find(fs, Table.FLOOD, reg0=0, tunnel_id=BLUE)) == {1, 3, TUNNEL["hv2"]}
    assert outputs(find(fs, Table.FLOOD, reg0=0, tunnel_id=RED)) == {2, TUNNEL["hv3"]}
    assert outputs(find(flows(net, "hv2"), Table.FLOOD, reg0=0, tunnel_id=BLUE)) == {1, TUNNEL["hv1"]}


def test_flood_from_a_tunnel_goes_to_local_ports_only(net):
    fs = flows(net, "hv1")
    assert outputs(find(fs, Table.FLOOD, reg0=1, tunnel_id=BLUE)) == {1, 3}
    assert outputs(find(fs, Table.FLOOD, reg0=1, tunnel_id=RED)) == {2}


def test_arp_responder_per_binding_answers_broadcast_requests_with_the_bound_mac(net):
    fs = [f for f in flows(net, "hv2") if f.table == Table.ARP_RESPONDER and f.priority == 100]
    wanted = {STATIC_IP: STATIC_MAC, **{p.ips[0]: p.mac for p in net.intent.ports if p.switch == "blue"}}
    assert {dict(f.match)["arp_tpa"]: f for f in fs}.keys() == wanted.keys()
    for f in fs:
        ip = dict(f.match)["arp_tpa"]
        assert dict(f.match) == {"tunnel_id": BLUE, "eth_type": ETH_ARP, "eth_dst": BROADCAST,
                                 "arp_op": 1, "arp_tpa": ip}
        assert SetField("eth_src", wanted[ip]) in f.actions and SetField("arp_sha", wanted[ip]) in f.actions
        assert SetField("arp_op", 2) in f.actions and f.actions[-1] == Output("in_port")


def test_no_flow_of_one_vni_outputs_to_a_port_of_another(net):
    for hv in net.hypervisors.values():
        vni_of = {a.ofport: a.vni for a in hv.attachments.values()}
        for f in l2_flows(net, hv):
            for port in outputs(f) & vni_of.keys():
                assert dict(f.match).get("tunnel_id") == vni_of[port], f.ofctl()


@pytest.mark.parametrize("hv_name, absent", [("hv2", RED), ("hv3", BLUE)])
def test_a_hypervisor_without_vms_of_a_vni_gets_no_flows_for_it(net, hv_name, absent):
    for f in flows(net, hv_name):
        assert dict(f.match).get("tunnel_id") != absent, f.ofctl()
        assert SetField("tunnel_id", absent) not in f.actions, f.ofctl()


def test_no_two_flows_share_a_key(net):
    for hv in net.hypervisors.values():
        keys = [f.key for f in l2_flows(net, hv)]
        assert len(keys) == len(set(keys)), hv.name


@pytest.mark.parametrize("dest", ["hv1", "hv3"])   # iterated before and after hv2
def test_a_moving_vm_is_reached_at_its_newest_attachment_everywhere(net, dest):
    _, b2 = vm(net, "b2")
    new = net.hypervisors[dest]
    net.set_interfaces(new, {**new.interfaces, "t-b2new": (9, "b2")})
    assert net.attachment_of(BLUE, b2.mac)[0] is new
    for hv in (h for h in net.hypervisors.values() if BLUE in h.vnis()):
        in_port = hv.tunnels["hv2"] if hv is new else min(a.ofport for a in hv.attachments.values())
        out, _ = walk(l2_flows(net, hv) + [PORT_SECURITY_OPEN], in_port=in_port, tunnel_id=BLUE, eth_type=ETH_IP, eth_dst=b2.mac)
        assert out == ([9] if hv is new else [TUNNEL[dest]]), hv.name


def test_wanted_tunnels_list_only_vteps_sharing_a_vni(net):
    vtep = {h.name: h.vtep_ip for h in net.hypervisors.values()}
    h = net.hypervisors
    assert net.wanted_tunnels(h["hv1"]) == {"hv2": vtep["hv2"], "hv3": vtep["hv3"]}
    assert net.wanted_tunnels(h["hv2"]) == {"hv1": vtep["hv1"]}
    assert net.wanted_tunnels(h["hv3"]) == {"hv1": vtep["hv1"]}
    h["hv2"].vtep_ip = None
    assert net.wanted_tunnels(h["hv1"]) == {"hv3": vtep["hv3"]}


# --- packets, end to end ---------------------------------------------------------------------

def arp_request(a: Attachment, ip: str, tpa: str) -> dict:
    return dict(in_port=a.ofport, eth_src=a.mac, eth_dst=BROADCAST, eth_type=ETH_ARP, arp_op=1,
                arp_sha=a.mac, arp_spa=ip, arp_tha="00:00:00:00:00:00", arp_tpa=tpa)


def test_broadcast_arp_for_a_known_ip_is_answered_out_of_in_port_only(net):
    _, b1 = vm(net, "b1")
    out, reply = walk(flows(net, "hv1"), **arp_request(b1, "10.1.1.11", STATIC_IP))
    assert out == ["in_port"]
    assert (reply["eth_src"], reply["eth_dst"], reply["arp_op"]) == (STATIC_MAC, b1.mac, 2)
    assert (reply["arp_sha"], reply["arp_spa"]) == (STATIC_MAC, STATIC_IP)
    assert (reply["arp_tha"], reply["arp_tpa"]) == (b1.mac, "10.1.1.11")


def test_arp_for_another_vnis_binding_is_not_answered_from_it(net):
    _, r1 = vm(net, "r1")   # red asks for blue's static IP: red does not know it
    assert walk(flows(net, "hv1"), **arp_request(r1, "10.1.1.11", STATIC_IP))[0] == ["controller"]


def test_arp_whose_sender_is_not_the_known_binding_goes_to_the_controller(net):
    _, b1 = vm(net, "b1")
    assert walk(flows(net, "hv1"), **arp_request(b1, "10.1.1.99", STATIC_IP))[0] == ["controller"]


def test_unknown_unicast_floods_to_local_ports_and_the_right_tunnels(net):
    fs = flows(net, "hv1")
    assert sorted(walk(fs, in_port=1, eth_type=ETH_IP, eth_dst=UNKNOWN_MAC)[0]) == [3, TUNNEL["hv2"]]
    assert sorted(walk(fs, in_port=2, eth_type=ETH_IP, eth_dst=UNKNOWN_MAC)[0]) == [TUNNEL["hv3"]]


def test_known_unicast_goes_to_one_place(net):
    (_, b1), (_, b2), fs = vm(net, "b1"), vm(net, "b2"), flows(net, "hv1")
    assert walk(fs, in_port=1, eth_type=ETH_IP, eth_dst=b2.mac)[0] == [TUNNEL["hv2"]]
    assert walk(fs, in_port=TUNNEL["hv2"], tunnel_id=BLUE, eth_type=ETH_IP, eth_dst=b1.mac)[0] == [1]


def test_a_frame_from_a_tunnel_is_never_sent_to_a_tunnel(net):
    macs = [a.mac for hv in net.hypervisors.values() for a in hv.attachments.values()]
    for hv in net.hypervisors.values():
        fs = l2_flows(net, hv)
        for port in hv.tunnels.values():
            for vni in (BLUE, RED):
                for dst in [*macs, UNKNOWN_MAC, BROADCAST]:
                    out, _ = walk(fs, in_port=port, tunnel_id=vni, eth_type=ETH_IP, eth_dst=dst)
                    assert not set(out) & set(TUNNEL.values()), (hv.name, port, vni, dst, out)


def test_with_arp_suppression_off_a_broadcast_arp_floods_to_the_vteps_of_its_vni(net):
    net.set_intent(dataclasses.replace(net.intent, arp_suppression=False))
    _, b1 = vm(net, "b1")
    fs = flows(net, "hv1")
    out, pkt = walk(fs, **arp_request(b1, "10.1.1.11", "10.1.1.12"))   # b2's IP: known, not answered
    assert sorted(out) == [3, TUNNEL["hv2"]] and pkt["arp_op"] == 1
    assert not [f for f in fs if f.table == Table.ARP_RESPONDER and f.priority > 0]
