"""Logical switching in a real Open vSwitch: l2_flows() installed in br-int, packets traced.

The model, built by hand: two logical switches share the subnet 10.1.1.0/24 (so only the
VNI keeps them apart). hvt (the bridge under test) hosts vm1 and vm2 on blue and vm3 on red;
hv2 hosts b2 on blue and g2 on green (which hvt does not host); hv3 hosts r3 and r12 on red,
where r12 has the IP that b2 has on blue. hvt's tunnels: vx-hv2 = ofport 10, vx-hv3 = 11.

Each test asks `ofproto/trace` and asserts on the datapath actions OVS computes: which
br-int ports get the packet, which VXLAN headers (VNI, remote VTEP) are pushed, what is
rewritten, what goes to the controller.
"""
from __future__ import annotations

import os
import re
import shutil

import pytest

from controller.flows import Flow
from controller.l2 import l2_flows
from controller.model import Network
from controller.tables import REG_FROM_TUNNEL, Table
from tests.labnet import network, port_security_open

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, Open vSwitch)"),
    pytest.mark.skipif(shutil.which("ovs-vswitchd") is None, reason="ovs-vswitchd is not installed"),
]

# br-int's ports, as the `ovs` fixture makes them and the model below numbers them.
VM_PORTS = {"vm1": 1, "vm2": 2, "vm3": 3}
TUNNELS = {"hv2": ("192.168.50.2", 10), "hv3": ("192.168.50.3", 11)}   # remote: (VTEP IP, ofport)

BLUE, RED, GREEN = 5001, 5002, 5003          # hvt hosts no green port
HV2_VTEP, HV3_VTEP = TUNNELS["hv2"][0], TUNNELS["hv3"][0]
STATIC_IP, STATIC_MAC = "10.1.1.50", "00:50:56:00:99:01"
TOPO = {
    "name": "ofproto",
    "hypervisors": [{"name": "hvt"}, {"name": "hv2"}, {"name": "hv3"}],   # VTEPs .1, .2, .3
    "logical_switches": [{"name": "blue", "vni": BLUE, "subnet": "10.1.1.0/24"},
                         {"name": "red", "vni": RED, "subnet": "10.1.1.0/24"},
                         {"name": "green", "vni": GREEN, "subnet": "10.3.3.0/24"}],
    "static_bindings": [{"switch": "blue", "ip": STATIC_IP, "mac": STATIC_MAC}],
}
# vm -> (hypervisor, VNI, IP, MAC); hvt's VMs use the bridge's real ports (VM_PORTS).
VMS = {
    "vm1": ("hvt", BLUE, "10.1.1.1", "00:50:56:00:01:01"),
    "vm2": ("hvt", BLUE, "10.1.1.2", "00:50:56:00:01:02"),
    "vm3": ("hvt", RED, "10.1.1.3", "00:50:56:00:02:03"),
    "b2": ("hv2", BLUE, "10.1.1.12", "00:50:56:00:01:12"),
    "r3": ("hv3", RED, "10.1.1.13", "00:50:56:00:02:13"),
    "r12": ("hv3", RED, "10.1.1.12", "00:50:56:00:02:12"),   # b2's IP, on the other VNI
    "g2": ("hv2", GREEN, "10.3.3.12", "00:50:56:00:03:12"),
}


def ip(vm: str) -> str:
    return VMS[vm][2]


def mac(vm: str) -> str:
    return VMS[vm][3]


@pytest.fixture
def net() -> Network:
    """Every VM a logical port with its configured IP (answered from intent, no snooping)."""
    vms = [{"name": vm, "hypervisor": hv, "switch": {BLUE: "blue", RED: "red", GREEN: "green"}[vni],
            "ip": vm_ip, "mac": vm_mac} for vm, (hv, vni, vm_ip, vm_mac) in VMS.items()]
    _, net = network({**TOPO, "vms": vms}, ofports=VM_PORTS)
    net.hypervisors["hvt"].tunnels = {remote: ofport for remote, (_, ofport) in TUNNELS.items()}
    return net


@pytest.fixture
def br(ovs, net):
    """br-int holding exactly l2_flows(net, hvt)."""
    ovs.install(l2_flows(net, net.hypervisors["hvt"]) + [port_security_open()])
    return ovs


def rule(net: Network, table: Table, **match) -> Flow:
    """The one flow of l2_flows(net, hvt) in `table` whose match includes `match`."""
    [flow] = [f for f in l2_flows(net, net.hypervisors["hvt"])
              if f.table == table and match.items() <= dict(f.match).items()]
    return flow


def from_vm(vm: str, dst: str, payload: str) -> str:
    """A trace flow: a frame that `vm` (one of hvt's) sends to the MAC `dst`."""
    return f"in_port={VM_PORTS[vm]},dl_src={mac(vm)},dl_dst={dst},{payload}"


def ip_to(vm: str, dst_mac: str, dst_ip: str) -> str:
    return from_vm(vm, dst_mac, f"ip,nw_src={ip(vm)},nw_dst={dst_ip}")


def arp_request(vm: str, target_ip: str) -> str:
    return from_vm(vm, "ff:ff:ff:ff:ff:ff",
                   f"arp,arp_op=1,arp_spa={ip(vm)},arp_tpa={target_ip},arp_sha={mac(vm)}")


def from_tunnel(remote: str, vni: int, src: str, dst: str, proto: str = "ip") -> str:
    return (f"in_port={TUNNELS[remote][1]},tun_id={vni},tun_src={TUNNELS[remote][0]},"
            f"tun_dst=192.168.50.1,dl_src={src},dl_dst={dst},{proto}")


# --- ARP suppression -------------------------------------------------------------------------

@pytest.mark.parametrize("asker, target_ip, answer", [
    ("vm1", ip("b2"), mac("b2")),          # remote VM
    ("vm1", ip("vm2"), mac("vm2")),        # local VM
    ("vm1", STATIC_IP, STATIC_MAC),        # static binding
    ("vm3", ip("r12"), mac("r12")),        # the same IP on red has red's MAC
], ids=["remote", "local", "static", "same-ip-other-vni"])
def test_arp_request_for_a_known_ip_is_answered_back_out_of_the_asking_port(br, net, asker, target_ip,
                                                                           answer):
    t = br.trace(arp_request(asker, target_ip))
    assert t.hit(rule(net, Table.ARP_RESPONDER, tunnel_id=VMS[asker][1], arp_tpa=target_ip)), t.report
    assert t.outputs == [asker], t.report
    assert t.tunnels == [] and not t.to_controller, t.report
    assert t.rewrite("eth") == {"src": answer, "dst": mac(asker)}, t.report
    assert t.rewrite("arp") == {"sip": target_ip, "tip": ip(asker), "op": "2",
                                "sha": answer, "tha": mac(asker)}, t.report


def test_arp_request_for_an_unknown_ip_goes_to_the_controller(br, net):
    t = br.trace(arp_request("vm1", "10.1.1.99"))
    [ask] = [f for f in l2_flows(net, net.hypervisors["hvt"]) if f.table == Table.ARP_RESPONDER
             and dict(f.match).get("tunnel_id") == BLUE and "arp_tpa" not in dict(f.match)]
    assert t.hit(ask), t.report
    assert t.to_controller, t.report
    assert t.outputs == [] and t.tunnels == [], t.report
    assert t.rewrite("arp") == {}, t.report


def test_arp_request_for_an_ip_known_only_on_the_other_vni_is_not_answered(br):
    """r3's IP is bound on red only: vm1, on blue, asking for it must not learn r3's MAC."""
    t = br.trace(arp_request("vm1", ip("r3")))
    assert mac("r3") not in t.datapath_actions, t.report
    assert t.to_controller and t.outputs == [] and t.tunnels == [], t.report


# --- known unicast ---------------------------------------------------------------------------

@pytest.mark.parametrize("sender, remote, target, vni, vtep", [
    ("vm1", "hv2", "b2", BLUE, HV2_VTEP),
    ("vm3", "hv3", "r3", RED, HV3_VTEP),
])
def test_unicast_to_a_remote_mac_is_tunnelled_to_its_vtep_with_the_vni(br, net, sender, remote, target,
                                                                        vni, vtep):
    t = br.trace(ip_to(sender, mac(target), ip(target)))
    ofport = TUNNELS[remote][1]
    assert t.hit(rule(net, Table.L2_LOOKUP, tunnel_id=vni, eth_dst=mac(target))), t.report
    assert re.search(rf"output:{ofport}\n\s+-> output to native tunnel\n"
                     rf"\s+-> tunneling to {re.escape(vtep)} via br-phy", t.text), t.report
    assert t.tunnels == [(vni, vtep)], t.report
    assert t.outputs == [], t.report


def test_unicast_from_a_tunnel_to_a_local_mac_reaches_that_vm_only(br):
    t = br.trace(from_tunnel("hv2", BLUE, mac("b2"), mac("vm2")))
    assert t.outputs == ["vm2"] and t.tunnels == [], t.report


# --- broadcast: local ports + head-end replication -------------------------------------------

@pytest.mark.parametrize("sender, dst, local, tunnels", [
    ("vm1", "ff:ff:ff:ff:ff:ff", ["vm2"], [(BLUE, HV2_VTEP)]),
    ("vm1", "01:00:5e:00:00:fb", ["vm2"], [(BLUE, HV2_VTEP)]),      # multicast floods too
    ("vm3", "ff:ff:ff:ff:ff:ff", [], [(RED, HV3_VTEP)]),
], ids=["blue-broadcast", "blue-multicast", "red-broadcast"])
def test_broadcast_from_a_vm_reaches_its_vni_locally_and_exactly_the_vteps_hosting_it(br, net, sender, dst,
                                                                                    local, tunnels):
    t = br.trace(ip_to(sender, dst, "10.1.1.255"))
    assert t.hit(rule(net, Table.FLOOD, **{REG_FROM_TUNNEL: 0, "tunnel_id": VMS[sender][1]})), t.report
    assert t.outputs == local, t.report         # never back to the sender, never the other VNI
    assert t.tunnels == tunnels, t.report


@pytest.mark.parametrize("remote, vni, local", [
    ("hv2", BLUE, ["vm1", "vm2"]),
    ("hv3", RED, ["vm3"]),
])
def test_broadcast_from_a_tunnel_reaches_local_ports_of_its_vni_only(br, net, remote, vni, local):
    t = br.trace(from_tunnel(remote, vni, "00:50:56:00:0f:0f", "ff:ff:ff:ff:ff:ff"))
    assert t.hit(rule(net, Table.FLOOD, **{REG_FROM_TUNNEL: 1, "tunnel_id": vni})), t.report
    assert t.outputs == local, t.report
    assert t.tunnels == [], t.report            # no tunnel gets it again: not 10, not 11


def test_known_unicast_from_a_tunnel_is_never_sent_back_into_a_tunnel(br):
    """hv2 sends red traffic for r3 (on hv3): split horizon keeps it off vx-hv3."""
    t = br.trace(from_tunnel("hv2", RED, "00:50:56:00:0f:0f", mac("r3")))
    assert t.tunnels == [], t.report
    assert "output:11" not in t.text and "output:10" not in t.text, t.report


# --- isolation -------------------------------------------------------------------------------

@pytest.mark.parametrize("dst", ["ff:ff:ff:ff:ff:ff", mac("vm1")], ids=["broadcast", "unicast"])
def test_a_frame_from_a_tunnel_with_a_vni_not_hosted_here_is_dropped(br, dst):
    t = br.trace(from_tunnel("hv2", GREEN, mac("g2"), dst))
    assert t.dropped, t.report


def test_a_frame_to_the_mac_of_a_local_vm_on_another_vni_is_not_delivered_to_it(br):
    t = br.trace(ip_to("vm1", mac("vm3"), ip("vm3")))
    assert "vm3" not in t.outputs, t.report
    assert all(vni == BLUE for vni, _ in t.tunnels), t.report   # flooded as unknown unicast on blue
    assert (RED, HV3_VTEP) not in t.tunnels, t.report
