"""The middle test layer: the controller's flows in a real Open vSwitch bridge, with
`ovs-appctl ofproto/trace` as the oracle (Neutron's functional tests do the same).

One emulated hypervisor ("hvt", dataplane.hypervisor.HypervisorOVS, userspace datapath)
in the namespace pw-t-ofproto. Its br-int gets VM ports and VXLAN tunnel ports with the
numbers the tests' model gives them; no controller listens, so br-int (fail-mode secure)
holds exactly the flows a test installs. Nothing is sent on any wire: trace only.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.flows import Flow
from mininet_topos.lab import wait_for
from dataplane.hypervisor import HypervisorOVS

NAMESPACE = "pw-t-ofproto"          # the pw- prefix: the session guard watches it
VTEP_CIDR = "192.168.50.1/24"
# br-int's ports. A test module whose model numbers them otherwise declares its own
# VM_PORTS {name: ofport} and TUNNELS {remote hypervisor: (VTEP IP, ofport)}.
VM_PORTS = {"vm1": 1, "vm2": 2, "vm3": 3}
TUNNELS = {"hv2": ("192.168.50.2", 10), "hv3": ("192.168.50.3", 11)}


def why_not() -> str | None:
    """Why this layer cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, Open vSwitch)"
    for tool in ("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "ovs-appctl", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def vtep_mac(ip: str) -> str:
    """A made-up MAC for a remote VTEP (nothing here answers ARP): aa:55:<its IP in hex>."""
    return "aa:55:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))


def in_namespace(command: str) -> str:
    """Run a shell command in the test namespace; its stdout and stderr, as text."""
    done = subprocess.run(["ip", "netns", "exec", NAMESPACE, "sh", "-c", command],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    return done.stdout


def host(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise RuntimeError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")


def split_actions(text: str) -> list[str]:
    """Top-level datapath actions: "4,tnl_push(a,b(c)),1" -> ["4", "tnl_push(a,b(c))", "1"]."""
    actions, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "," and depth == 0:
            actions.append(text[start:i])
            start = i + 1
    actions.append(text[start:])
    return [a.strip() for a in actions if a.strip()]


_TNL_PUSH = re.compile(r"tnl_push\(.*?ipv4\(src=([\d.]+),dst=([\d.]+)"
                       r".*?vxlan\(flags=0x[0-9a-f]+,vni=(0x[0-9a-f]+)\)")


@dataclass(repr=False)
class Trace:
    """One `ofproto/trace` of br-int, and what its final datapath actions say."""
    flow: str
    text: str
    dp_ports: dict[int, tuple[str, str]]      # datapath port -> (bridge, interface)

    @property
    def datapath_actions(self) -> str:
        """The final "Datapath actions:" line's actions ("drop" when there are none)."""
        found = re.findall(r"^Datapath actions: (.*)$", self.text, re.M)
        if not found:
            raise AssertionError(f"no 'Datapath actions:' in the trace of {self.flow}:\n{self.text}")
        return found[-1].strip()

    @property
    def actions(self) -> list[str]:
        return split_actions(self.datapath_actions)

    @property
    def outputs(self) -> list[str]:
        """br-int interfaces the datapath outputs the (unencapsulated) packet to, by name.
        A bare port of br-phy only follows a tnl_push: the encapsulated copy on its way out."""
        names = []
        for action in self.actions:
            if action.isdigit():
                if int(action) not in self.dp_ports:
                    raise AssertionError(f"output to unknown datapath port {action}: {self.report}")
                bridge, name = self.dp_ports[int(action)]
                if bridge == "br-int":
                    names.append(name)
                elif "tnl_push(" not in self.datapath_actions:
                    raise AssertionError(f"output to {bridge} {name} without a tunnel: {self.report}")
        return sorted(names)

    @property
    def tunnels(self) -> list[tuple[int, str]]:
        """(VNI, remote VTEP IP) of every VXLAN header the datapath pushes, sorted."""
        return sorted((int(vni, 16), dst) for _src, dst, vni in _TNL_PUSH.findall(self.datapath_actions))

    @property
    def to_controller(self) -> bool:
        return bool(re.search(r"userspace\(.*controller\(", self.datapath_actions))

    @property
    def dropped(self) -> bool:
        return self.datapath_actions == "drop"

    def rewrite(self, header: str) -> dict[str, str]:
        """The fields a set(<header>(...)) action writes, e.g. rewrite("arp")["op"] == "2"."""
        m = re.search(rf"set\({header}\(([^)]*)\)\)", self.datapath_actions)
        return dict(kv.split("=", 1) for kv in m.group(1).split(",")) if m else {}

    def hit(self, flow: Flow) -> bool:
        """Whether the packet matched `flow` (the trace names each rule's cookie)."""
        return re.search(rf"^ *{int(flow.table)}\. .*, cookie {flow.cookie:#x}$", self.text, re.M) is not None

    @property
    def report(self) -> str:
        """For assertion messages: the whole trace, and which datapath port is which."""
        legend = ", ".join(f"{n}={name}" for n, (_, name) in sorted(self.dp_ports.items()))
        return f"ofproto/trace br-int '{self.flow}'\n{self.text}\n(datapath ports: {legend})"


class Bridge:
    """br-int of the test hypervisor: install flows, trace packets."""

    def __init__(self, hv: HypervisorOVS):
        self.hv = hv
        self.dp_ports = self._dp_ports()

    def _dp_ports(self) -> dict[int, tuple[str, str]]:
        """Datapath port number -> (bridge, interface), from `ovs-appctl dpif/show`.
        (All VXLAN ports share one datapath port; the tnl_push header tells them apart.)"""
        ports, bridge = {}, None
        for line in self.hv.sh("ovs-appctl dpif/show").splitlines():
            if m := re.fullmatch(r"  (\S+):", line):
                bridge = m.group(1)
            elif m := re.match(r"    (\S+) \d+/(\d+):", line):
                ports.setdefault(int(m.group(2)), (bridge, m.group(1)))
        return ports

    def install(self, flows: list[Flow]) -> None:
        """Replace br-int's flows with `flows` (ovs-ofctl add-flows from a file), with the
        meters and failover groups they use made first, as the controller makes them."""
        from controller.flows import Group, Meter
        from controller.mobility import PORT_GROUP_BASE
        from controller.tables import Table
        path = self.hv.rundir / "flows.txt"
        path.write_text("".join(f.ofctl() + "\n" for f in flows))
        self.hv.sh("ovs-ofctl -O OpenFlow13 del-flows br-int")
        self.hv.sh("ovs-ofctl -O OpenFlow13 del-groups br-int")
        self.hv.sh("ovs-ofctl -O OpenFlow13 del-meters br-int")
        used = {a for f in flows for a in f.actions if isinstance(a, (Meter, Group))}
        for a in sorted(used, key=lambda a: (type(a).__name__, a.id)):
            if isinstance(a, Meter):
                self.hv.sh(f"ovs-ofctl -O OpenFlow13 add-meter br-int meter={a.id},pktps,band=type=drop,rate=1000")
            else:
                port = a.id - PORT_GROUP_BASE
                self.hv.sh(f"ovs-ofctl -O OpenFlow13 add-group br-int 'group_id={a.id},type=ff,bucket=watch_port:"
                           f"{port},output:{port},bucket=watch_port:CONTROLLER,resubmit(,{int(Table.IN_TRANSIT)})'")
        self.hv.sh(f"ovs-ofctl -O OpenFlow13 add-flows br-int {path}")

    def dump_flows(self) -> str:
        return self.hv.sh("ovs-ofctl -O OpenFlow13 --no-stats dump-flows br-int")

    def trace(self, flow: str) -> Trace:
        return Trace(flow, self.hv.sh(f"ovs-appctl ofproto/trace br-int '{flow}'"), self.dp_ports)

    def ofport(self, name: str) -> int:
        return int(self.hv.vsctl(f"get interface {name} ofport").strip())


@pytest.fixture(scope="module")
def ovs(request, tmp_path_factory):
    """br-int of a started HypervisorOVS, with the module's VM and tunnel ports (see VM_PORTS);
    the daemons are stopped and the namespace deleted afterwards, whatever happened."""
    vm_ports = getattr(request.module, "VM_PORTS", VM_PORTS)
    tunnels = getattr(request.module, "TUNNELS", TUNNELS)
    reason = why_not()
    if reason:
        pytest.skip(reason)
    rundir = Path(tmp_path_factory.mktemp("ofproto")) / "hvt"
    hv = HypervisorOVS(name="hvt", rundir=rundir, run=in_namespace, dpid=1, vtep_cidr=VTEP_CIDR,
                       mgmt_ip="127.0.0.1", controller="tcp:127.0.0.1:6653")
    if NAMESPACE in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
        pytest.fail(f"namespace {NAMESPACE} already exists (left by an earlier run?): "
                    f"not touching it; remove it with `ip netns del {NAMESPACE}`")
    host("ip", "netns", "add", NAMESPACE)
    try:
        host("ip", "-n", NAMESPACE, "link", "add", "vmnic0", "type", "veth", "peer", "name", "peer0")
        host("ip", "-n", NAMESPACE, "link", "set", "lo", "up")
        host("ip", "-n", NAMESPACE, "link", "set", "peer0", "up")
        hv.start()
        for port, ofport in vm_ports.items():
            hv.vsctl(f"add-port br-int {port}", "--",
                     f"set interface {port} type=internal ofport_request={ofport}")
        for remote, (ip, ofport) in tunnels.items():
            hv.vsctl(f"add-port br-int vx-{remote}", "--",
                     f"set interface vx-{remote} type=vxlan options:remote_ip={ip}",
                     f"options:key=flow ofport_request={ofport}")
        # The userspace datapath pushes a tunnel header only once it knows the route to the
        # VTEP (OVS's own, given at start: HypervisorOVS.vtep_script) and the next hop's MAC (set here).
        wait_for(lambda: "192.168.50.0/24 dev br-phy" in hv.sh("ovs-appctl ovs/route/show"), 10.0,
                 "ovs-router to learn 192.168.50.0/24 on br-phy")
        for ip, _ in tunnels.values():
            hv.sh(f"ovs-appctl tnl/neigh/set br-phy {ip} {vtep_mac(ip)}")
        bridge = Bridge(hv)
        for name, ofport in {**vm_ports, **{f"vx-{r}": p for r, (_, p) in tunnels.items()}}.items():
            assert bridge.ofport(name) == ofport, f"{name} did not get ofport {ofport}"
        yield bridge
    finally:
        try:
            hv.stop()
        finally:
            host("ip", "netns", "del", NAMESPACE)
