"""A VM's live migration in the lab, in the order a hypervisor does it.

1. The VM's port appears on the new hypervisor's br-int with the same iface-id and MAC (a
   new vNIC: a veth whose VM end is in the VM's namespace, down: the VM does not run there
   yet), while the VM still runs on the old one.
2. The migration starts once the network has made that port (Nova waits so for Neutron's
   `network-vif-plugged` before it live-migrates): the controller's change is realized.
3. Switchover: the new vNIC comes up with the VM's address, routes and neighbours, then the
   old one goes down (a tap device queues what arrives for a VM that is about to resume
   there; a veth has no queue, so the new end is up before the old one is down: up on the
   hypervisor's side too, whose queue the kernel starts a moment after the carrier, in its
   link watch; a frame sent into it before that is dropped, as one sent into the old vNIC
   once it is down: a ping lost in about one move in ten).
4. The VM announces itself (gratuitous ARP, as QEMU and a guest OS do after a migration),
   and its old vNIC and old port go (the old hypervisor's tap is deleted, then its port).

The VM's active vNIC is always reachable as `eth0` (its name, or an altname of it), so
commands and captures that name eth0 keep working after a move. The hypervisor's end is made
in its namespace under its final name (made in the VM's namespace, where no such name exists):
Open vSwitch's userspace datapath lost, for a moment, frames that crossed a tunnel on a
hypervisor where a network device appeared, changed or went (4-26 pings of ~1,300-1,900 over
40 add/remove cycles of an unrelated port), until each hypervisor kept its own route to the
underlay (dataplane/hypervisor.py, VTEP_ROUTING); the move still makes no more device changes
than it must.
"""
from __future__ import annotations

import re

NAMES = ("eth0", "eth1")       # a VM's vNIC and the one it moves to take turns


def neighbours(node, dev: str) -> list[tuple[str, str]]:
    """(IP, MAC) of the VM's resolved neighbours on `dev` (its ARP cache goes with it)."""
    out = node.cmd(f"ip -4 neigh show dev {dev}")
    return re.findall(r"^(\S+) lladdr (\S+) (?:REACHABLE|STALE|DELAY|PROBE|PERMANENT)", out, re.M)


def live_migrate(lab, name: str, to: str, made) -> None:
    """Move VM `name` from its hypervisor to `to`. `made(ofport)` is true once the controller
    has made the port's new place, the port OVS numbered `ofport` there (its change realized)."""
    from mininet_topos.lab import LabError, wait_for
    vm, node = lab.topo.vm(name), lab.vm(name)
    src, dst = lab.hv(lab.placement[name]), lab.hv(to)
    sw = lab.topo.switch(vm.switch)
    intf = node.defaultIntf()
    old = intf.name
    new = NAMES[1] if old == NAMES[0] else NAMES[0]
    # 1. the new port, with the same iface-id and MAC, while the VM still runs on src
    if new == "eth0":
        node.cmd(f"ip link property del dev {old} altname eth0")
    out = node.cmd(f"ip link add {new} address {vm.mac} type veth peer name {name} netns {dst.pid} && echo ok")
    if "ok" not in out:
        raise LabError(f"{name}: no new vNIC for the move to {to}: {out.strip()}")
    dst.ovs.attach_vm(name, name, vm.mac, sw.name, sw.vni)
    ofport = int(dst.ovs.vsctl(f"get Interface {name} ofport").strip())
    # 2. the network has made it
    wait_for(lambda: made(ofport), 10, f"the controller to make {name}'s port on {to}", 0.005)
    # 3. switchover: new vNIC up with the VM's address, and ready on the hypervisor's side
    #    too; then its routes and neighbours; the old one's routes go before it does (nothing
    #    is sent into a vNIC going down), then it goes down
    node.cmd(f"ip addr add {vm.ip}/{sw.subnet.prefixlen} dev {new} && ip link set {new} up")
    wait_for(lambda: dst.cmd(f"cat /sys/class/net/{name}/operstate").strip() == "up", 10,
             f"{name}'s new port on {to} to be up", 0.002)
    gateway = lab.topo.gateway(vm)
    steps = []
    if gateway:
        steps.append(f"route replace default via {gateway} dev {new}")
    steps += [f"neigh replace {ip} lladdr {mac} dev {new} nud stale" for ip, mac in neighbours(node, old)]
    steps += [f"route del {sw.subnet} dev {old}", f"link set {old} down"]
    node.cmd("printf '%s\\n' " + " ".join(f"'{s}'" for s in steps) + " | ip -batch -")
    del node.nameToIntf[old]
    intf.name = new
    node.nameToIntf[new] = intf
    lab.placement[name] = to
    lab.write_lab_file()
    node.announce()
    # 4. the old vNIC and the old port go
    node.cmd(f"ip link del {old}")
    src.ovs.detach_vm(name)
    if new != "eth0":
        node.cmd(f"ip link property add dev {new} altname eth0")
