"""Mininet node classes for the lab: hypervisors, VMs, and (from Mininet) Linux bridges for
the underlay "physical switch" and the management network."""
from __future__ import annotations

from pathlib import Path

from mininet.node import Host, Node

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


class VM(Host):
    """A VM: MTU 1450, no TX checksum offload (TCP through the userspace datapath needs
    it off), no IPv6 chatter, and a gratuitous ARP when it 'boots' (announce)."""

    def config(self, **params):
        result = super().config(**params)
        intf = self.defaultIntf()
        self.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
        self.cmd(f"ip link set {intf} mtu {VM_MTU}")
        self.cmd(f"ethtool -K {intf} tx off >/dev/null 2>&1")
        return result

    def announce(self, wait: bool = True):
        """Send a gratuitous ARP, as a guest OS does when its interface comes up (arping
        waits a second after it; `wait=False` leaves it to finish in the background)."""
        self.cmd(f"arping -q -U -c 1 -I {self.defaultIntf()} {self.IP()}" + ("" if wait else " &"))

