"""Mininet node classes for the lab: hypervisors, VMs, and (from Mininet) Linux bridges for
the underlay "physical switch" and the management network."""
from __future__ import annotations

from pathlib import Path

from mininet.link import Link
from mininet.node import Host, Node
from mininet.nodelib import LinuxBridge

from dataplane.hypervisor import HypervisorOVS, ovs_env

VM_MTU = 1450      # VXLAN adds 50 bytes; the underlay MTU is 1500


class HypervisorNode(Node):
    """A hypervisor: a namespace running its own Open vSwitch (see dataplane/hypervisor.py).
    Commands typed at it in the Mininet CLI run with its OVS environment. The physical
    baseline's hosts and router are the same kind of node (dataplane/physical.py)."""

    def __init__(self, name, rundir=None, dpid=1, vtep_cidr=None, mgmt_ip=None, controller=None, ssl=None,
                 **params):
        super().__init__(name, inNamespace=True, **params)
        self.ovs = HypervisorOVS(name, Path(rundir), self.cmd, dpid, vtep_cidr, mgmt_ip, controller, ssl)
        self.cmd("export " + " ".join(f"{k}={v}" for k, v in ovs_env(rundir).items()))

    def terminate(self):
        self.ovs.stop()
        super().terminate()


class PrecreatedLink(Link):
    """A Mininet link whose veth pair already exists (the lab makes every pair of a network
    in one `ip -batch`: one process, not one per link); pass params1/params2 {"up": None}
    to leave bringing it up to the nodes' own setup commands."""

    @classmethod
    def makeIntfPair(cls, *args, **kwargs):
        pass


class Bridge(LinuxBridge):
    """A Linux bridge (the underlay "physical switch", the management network), set up in
    one command: made unless it exists (the lab makes the management bridge before the rest,
    so the controller can listen on it meanwhile), no netfilter on it, its ports enslaved."""

    def start(self, _controllers):
        ports = [i for i in self.intfList() if self.name in i.name]
        self.cmd(f"ip link show {self} >/dev/null 2>&1 || ip link add {self} type bridge; "
                 f"ip link set {self} type bridge {NO_NETFILTER}; "
                 + "".join(f"ip link set {i} master {self} up; " for i in ports) + f"ip link set {self} up")


NO_NETFILTER = "nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0"   # keep the host's firewall off


class VM(Host):
    """A VM: MTU 1450, no TX checksum offload (TCP through the userspace datapath needs
    it off), no IPv6 chatter, and a gratuitous ARP when it 'boots' (announce)."""

    def config(self, mac=None, ip=None, defaultRoute=None, **_params):
        """Address, MAC, MTU, default route, offload: one shell command (Mininet's own
        config takes one per setting, and a lab has many VMs)."""
        self.cmd(self.config_command(mac, ip, defaultRoute))
        return {}

    def config_command(self, mac=None, ip=None, defaultRoute=None, **_params) -> str:
        """config() as one shell line, for a caller that configures many VMs at once."""
        intf = self.defaultIntf()
        intf.ip, plen = ip.split("/")
        intf.prefixLen, intf.mac = int(plen), mac
        route = f" && ip route replace default {defaultRoute}" if defaultRoute else ""
        return (f"sysctl -qw net.ipv6.conf.all.disable_ipv6=1; ip link set lo up"
                f" && ip link set {intf} address {mac} mtu {VM_MTU} up && ip addr add {ip} dev {intf}{route};"
                f" ethtool -K {intf} tx off >/dev/null 2>&1")

    def announce_command(self) -> str:
        """A gratuitous ARP, as a guest OS sends when its interface comes up; in the
        background (arping lingers a second after sending; it is in the VM shell's process
        group, so it goes with the VM)."""
        return f"arping -q -U -c 1 -I {self.defaultIntf()} {self.IP()} >/dev/null 2>&1 &"

    def announce(self):
        self.cmd(self.announce_command())

