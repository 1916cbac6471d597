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
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.flows import Flow
from dataplane.hypervisor import HypervisorOVS

NAMESPACE = "pw-t-ofproto"          # the pw- prefix: the session guard watches it
VTEP_CIDR = "192.168.50.1/24"
# VM ports and tunnel ports on br-int: name -> ofport (the tests' model uses these numbers).
VM_PORTS = {"vm1": 1, "vm2": 2, "vm3": 3}
TUNNELS = {"hv2": ("192.168.50.2", 10), "hv3": ("192.168.50.3", 11)}
# Where the userspace datapath would send each VTEP's packets (static: nothing answers ARP here).
VTEP_MACS = {"192.168.50.2": "aa:55:00:00:00:02", "192.168.50.3": "aa:55:00:00:00:03"}


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, Open vSwitch)"
    for tool in ("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "ovs-appctl", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def in_namespace(command: str) -> str:
    """Run a shell command in the test namespace; its stdout and stderr, as text."""
    done = subprocess.run(["ip", "netns", "exec", NAMESPACE, "sh", "-c", command],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    return done.stdout


def host(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)


def wait_for(what: str, check, timeout: float = 10.0):
    """Poll `check()` until it returns something true; fail saying `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Trace:
    flow: str
    text: str

    @property
    def datapath_actions(self) -> str:
        """The final "Datapath actions:" line's actions ("drop" when there are none)."""
        found = re.findall(r"^Datapath actions: (.*)$", self.text, re.M)
        if not found:
            raise AssertionError(f"no 'Datapath actions:' in the trace of {self.flow}:\n{self.text}")
        return found[-1].strip()

    def __str__(self) -> str:
        return self.text


class Bridge:
    """br-int of the test hypervisor: install flows, trace packets."""

    def __init__(self, hv: HypervisorOVS):
        self.hv = hv

    def install(self, flows: list[Flow]) -> None:
        """Replace br-int's flows with `flows` (ovs-ofctl add-flows from a file)."""
        path = self.hv.rundir / "flows.txt"
        path.write_text("".join(f.ofctl() + "\n" for f in flows))
        self.hv.sh("ovs-ofctl -O OpenFlow13 del-flows br-int")
        self.hv.sh(f"ovs-ofctl -O OpenFlow13 add-flows br-int {path}")

    def dump_flows(self) -> str:
        return self.hv.sh("ovs-ofctl -O OpenFlow13 --no-stats dump-flows br-int")

    def trace(self, flow: str) -> Trace:
        return Trace(flow, self.hv.sh(f"ovs-appctl ofproto/trace br-int '{flow}'"))

    def ofport(self, name: str) -> int:
        return int(self.hv.vsctl(f"get interface {name} ofport").strip())


@pytest.fixture(scope="module")
def ovs(tmp_path_factory):
    """A started HypervisorOVS with VM and tunnel ports on br-int; everything is removed after."""
    reason = why_not()
    if reason:
        pytest.skip(reason)
    rundir = Path(tmp_path_factory.mktemp("ofproto")) / "hvt"
    hv = HypervisorOVS(name="hvt", rundir=rundir, run=in_namespace, dpid=1, vtep_cidr=VTEP_CIDR,
                       mgmt_ip="127.0.0.1", controller="tcp:127.0.0.1:6653")
    host("ip", "netns", "add", NAMESPACE)
    try:
        host("ip", "-n", NAMESPACE, "link", "add", "vmnic0", "type", "veth", "peer", "name", "peer0")
        host("ip", "-n", NAMESPACE, "link", "set", "lo", "up")
        host("ip", "-n", NAMESPACE, "link", "set", "peer0", "up")
        hv.start()
        for port, ofport in VM_PORTS.items():
            hv.vsctl(f"add-port br-int {port}", "--",
                     f"set interface {port} type=internal ofport_request={ofport}")
        for remote, (ip, ofport) in TUNNELS.items():
            hv.vsctl(f"add-port br-int vx-{remote}", "--",
                     f"set interface vx-{remote} type=vxlan options:remote_ip={ip}",
                     f"options:key=flow ofport_request={ofport}")
        # The userspace datapath pushes a tunnel header only once it knows the route to the
        # VTEP (learned from the namespace's routes) and the next hop's MAC (set here).
        wait_for("ovs-router to learn 192.168.50.0/24 on br-phy",
                 lambda: "192.168.50.0/24 dev br-phy" in hv.sh("ovs-appctl ovs/route/show"))
        for ip, mac in VTEP_MACS.items():
            hv.sh(f"ovs-appctl tnl/neigh/set br-phy {ip} {mac}")
        bridge = Bridge(hv)
        for name, ofport in {**VM_PORTS, **{f"vx-{r}": p for r, (_, p) in TUNNELS.items()}}.items():
            assert bridge.ofport(name) == ofport, f"{name} did not get ofport {ofport}"
        yield bridge
    finally:
        hv.stop()
        host("ip", "netns", "del", NAMESPACE)
