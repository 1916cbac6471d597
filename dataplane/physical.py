"""The physical baseline's devices (the seed's first scenario, no overlay), each an Open
vSwitch in its own namespace in standalone mode (NORMAL MAC learning, 802.1Q in OVS, so it
needs no VLAN support from the kernel):

    host     a hypervisor with a plain vSwitch: VM ports are access ports of their VLAN
             (the port group), the uplink a trunk
    switch   the physical switch: every port a trunk; its MAC table learns every VM's MAC
    router   the central router: one trunk, a tagged internal port per VLAN with the gateway
             IP (router on a stick), IP forwarding on
"""
from __future__ import annotations

from dataplane.hypervisor import HypervisorOVS


def _bridge(ovs: HypervisorOVS, name: str) -> None:
    ovs.vsctl(f"add-br {name}", "--", f"set bridge {name} datapath_type=netdev fail_mode=standalone",
              "other_config:disable-in-band=true")


def start_host(ovs: HypervisorOVS, uplink: str, access: dict[str, int]) -> None:
    ovs.start_daemons()
    _bridge(ovs, "vswitch")
    ovs.vsctl(f"add-port vswitch {uplink}")
    ovs.sh(f"ip link set {uplink} up")
    for port, vlan in access.items():
        ovs.sh(f"ip link set {port} up")
        ovs.vsctl(f"add-port vswitch {port} tag={vlan}")


def start_switch(ovs: HypervisorOVS, ports: list[str]) -> None:
    ovs.start_daemons()
    _bridge(ovs, "pswitch")
    for port in ports:
        ovs.sh(f"ip link set {port} up")
        ovs.vsctl(f"add-port pswitch {port}")


def start_router(ovs: HypervisorOVS, trunk: str, interfaces: list[tuple[int, str]]) -> None:
    ovs.start_daemons()
    ovs.sh("sysctl -qw net.ipv4.ip_forward=1")
    _bridge(ovs, "trunk")
    ovs.sh(f"ip link set {trunk} up")
    ovs.vsctl(f"add-port trunk {trunk}")
    for vlan, cidr in interfaces:
        port = f"vlan{vlan}"
        ovs.vsctl(f"add-port trunk {port} tag={vlan}", "--", f"set interface {port} type=internal")
        ovs.sh(f"ip addr add {cidr} dev {port}")
        ovs.sh(f"ip link set {port} up")
