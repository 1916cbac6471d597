"""The lab: a topology file made real. Hypervisors (namespaced Open vSwitch), VMs (Mininet
hosts), the underlay "physical switch" and the management network (Linux bridges), and
the controller process that every hypervisor connects to.

    with Lab(topology) as lab:       # everything up, or everything torn down and LabError
        lab.vm("vm1").cmd("ping -c1 10.1.1.12")
"""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge

from dataplane import physical
from dataplane.pki import LabPKI
from dataplane.hypervisor import MGMT, OPENFLOW_PORT, UPLINK, HypervisorError
from mininet_topos import capacity, cleanup, interrupts
from mininet_topos.nodes import VM, HypervisorNode
from mininet_topos.topology import Topology, intent_dict

RUNDIR = Path(os.environ.get("PACKETWALK_RUNDIR", "/run/packetwalk"))
API_PORT = 8181          # the controller's northbound REST API, on loopback
LAB_FILE = "lab.json"    # what a running lab is, for `packetwalk trace/show/diagram` in another shell
UNDERLAY = cleanup.PREFIX + "ul"
MGMT_BRIDGE = cleanup.PREFIX + "mg"


class LabError(RuntimeError):
    pass


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """Poll `condition()` until it returns something truthy; LabError naming `what` if not."""
    deadline = time.monotonic() + timeout
    while True:
        interrupts.checkpoint()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


NB_PORT, NB_RAFT_PORT = 6641, 6643     # the controller database's clients and its Raft peers


def _settle(node, timeout: float = 2.0) -> None:
    """A node whose command was cut short (a signal during a check) still waits for its
    output: interrupt the command and read up to the prompt, so teardown can use the shell."""
    deadline = time.monotonic() + timeout
    if node.waiting and node.shell:
        node.sendInt()
        while node.waiting and time.monotonic() < deadline:
            node.monitor(timeoutms=100)
    node.waiting = False


class Lab:
    def __init__(self, topology: Topology, rundir: Path = RUNDIR, progress=None, verbose=False, nb_cluster: int = 0,
                 ssl=False):
        self.topo = topology
        self.nb_cluster = nb_cluster      # 0: the controller's embedded database; N: an N-member Raft cluster
        self.ssl = ssl           # OpenFlow and the hypervisors' OVSDB over SSL, with the lab's own PKI
        self.pki: LabPKI | None = None
        self.rundir = Path(rundir)
        self._progress = progress or (lambda msg: None)
        self.verbose = verbose
        self.net: Mininet | None = None
        self.controller: subprocess.Popen | None = None
        self.manifest: cleanup.Manifest | None = None
        self.placement = {vm.name: vm.hypervisor for vm in topology.vms}   # VM -> hypervisor now
        self.extra_vms = {}               # VMs added while running: name -> (ip, mac, switch)

    def progress(self, message: str) -> None:
        """Say what the lab does next; a step boundary, so a SIGINT/SIGTERM noted meanwhile acts here."""
        interrupts.checkpoint()
        self._progress(message)

    # --- access ---------------------------------------------------------------------------
    def hv(self, name: str) -> HypervisorNode:
        return self.net[name]

    def vm(self, name: str) -> VM:
        return self.net[name]

    def vms_on(self, hypervisor: str) -> list:
        """The VMs on `hypervisor` now (after any moves)."""
        return [vm for vm in self.topo.vms if self.placement[vm.name] == hypervisor]

    @property
    def state_file(self) -> Path:
        return self.rundir / "controller" / "state.json"

    def controller_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    # --- life cycle -------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> None:
        """Everything up, or (on an error, SIGINT or SIGTERM at any moment) everything torn
        down and the error raised (interrupts.Interrupted for a signal)."""
        reason = capacity.too_large(self.topo, capacity.Machine.here())
        if reason:
            raise LabError(f"{self.topo.source}: too large for this machine: {reason}")
        clash = {r.name for r in self.topo.routers} & ({h.name for h in self.topo.hypervisors}
                                                       | {v.name for v in self.topo.vms})
        if self.topo.kind == "physical" and clash:
            raise LabError(f"{self.topo.source}: router and host/VM names must differ: {', '.join(sorted(clash))}")
        left = cleanup.leftovers(self.rundir)
        if left:
            raise LabError("a lab is running, or a crashed one left " + ", ".join(left)
                           + ": stop it, or run `packetwalk lab clean`")
        with interrupts.deferred():
            try:
                shutil.rmtree(self.rundir, ignore_errors=True)   # logs of the last run; nothing is running
                self.rundir.mkdir(parents=True)
                self.manifest = cleanup.Manifest(self.rundir)
                if self.ssl and self.topo.kind != "physical":
                    self.progress("making the lab's CAs and certificates")
                    self.pki = LabPKI(self.rundir / "pki", [hv.name for hv in self.topo.hypervisors])
                if self.topo.kind == "physical":
                    self._build_physical()
                else:
                    self._build()
                    self._start_controller()
                    self._start_hypervisors()
                    self._wait_ready()
                self.write_lab_file()
            except BaseException:
                self.stop()      # raises Interrupted if a signal came (the error it caused is its cause)
                raise
        interrupts.checkpoint()

    def _build(self) -> None:
        t = self.topo
        setLogLevel("error" if not self.verbose else "info")
        self.progress(f"building {t.name}: {len(t.hypervisors)} hypervisors, {len(t.vms)} VMs")
        net = self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
        underlay = net.addSwitch(UNDERLAY, cls=LinuxBridge, dpid="1")
        mgmt = net.addSwitch(MGMT_BRIDGE, cls=LinuxBridge, dpid="2")
        ctl = f"{'ssl' if self.pki else 'tcp'}:{t.controller_ip}:{OPENFLOW_PORT}"
        for i, hv in enumerate(t.hypervisors, start=1):
            interrupts.checkpoint()
            node = net.addHost(hv.name, cls=HypervisorNode, ip=None, rundir=str(self.rundir / hv.name),
                               dpid=i, vtep_cidr=f"{hv.vtep_ip}/{t.underlay.prefixlen}",
                               mgmt_ip=str(hv.mgmt_ip), controller=ctl,
                               ssl=self.pki.hypervisors[hv.name] if self.pki else None)
            net.addLink(node, underlay, intfName1=UPLINK, intfName2=f"{UNDERLAY}-{hv.name}")
            net.addLink(node, mgmt, intfName1=MGMT, intfName2=f"{MGMT_BRIDGE}-{hv.name}",
                        params1={"ip": f"{hv.mgmt_ip}/{t.management.prefixlen}"})
        for i in range(1, self.nb_cluster + 1):
            node = net.addHost(self.nb_member(i), ip=None)
            net.addLink(node, mgmt, intfName1="eth0", intfName2=f"{MGMT_BRIDGE}-{node.name}",
                        params1={"ip": f"{self.nb_ip(i)}/{t.management.prefixlen}"})
        self._add_vms()
        self._start_net()
        mask = t.management.prefixlen
        subprocess.run(["ip", "addr", "add", f"{t.controller_ip}/{mask}", "dev", MGMT_BRIDGE], check=True)
        if self.nb_cluster:
            self._start_nb_cluster()

    # --- the controller's database as a Raft cluster (--nb-cluster N) ----------------------
    def nb_member(self, i: int) -> str:
        return f"nbdb{i}"

    def nb_ip(self, i: int) -> str:
        return str(self.topo.management.broadcast_address - 10 - i)

    @property
    def nb_remote(self) -> str:
        return ",".join(f"tcp:{self.nb_ip(i)}:{NB_PORT}" for i in range(1, self.nb_cluster + 1))

    def nb_ctl(self, i: int) -> str:
        return str(self.rundir / self.nb_member(i) / "ovsdb-server.ctl")

    def _start_nb_cluster(self) -> None:
        """ovsdb-tool create-cluster on the first member, join-cluster on the others; one
        ovsdb-server each, in its own namespace on the management network."""
        from controller.nbdb import DB_NAME, SCHEMA
        self.progress(f"starting the controller's database: a {self.nb_cluster}-member Raft cluster")
        first = f"tcp:{self.nb_ip(1)}:{NB_RAFT_PORT}"
        for i in range(1, self.nb_cluster + 1):
            d = self.rundir / self.nb_member(i)
            d.mkdir(parents=True, exist_ok=True)
            me = f"tcp:{self.nb_ip(i)}:{NB_RAFT_PORT}"
            tool = ["ovsdb-tool", "create-cluster", f"{d}/nb.db", str(SCHEMA), me] if i == 1 else \
                ["ovsdb-tool", "join-cluster", f"{d}/nb.db", DB_NAME, me, first]
            subprocess.run(tool, check=True, capture_output=True)
            self.start_nb_member(i)

    def start_nb_member(self, i: int) -> None:
        d, node = self.rundir / self.nb_member(i), self.net[self.nb_member(i)]
        out = node.cmd(f"ovsdb-server {d}/nb.db --remote=ptcp:{NB_PORT}:{self.nb_ip(i)} --pidfile={d}/ovsdb-server.pid "
                       f"--unixctl={self.nb_ctl(i)} --log-file={d}/ovsdb-server.log --detach --no-chdir; echo rc=$?")
        if "rc=0" not in out:
            raise LabError(f"database member {self.nb_member(i)} did not start: {out.strip()}")
        self.manifest.add_pid(int((d / "ovsdb-server.pid").read_text()), "ovsdb-server")

    def nb_pid(self, i: int) -> int | None:
        try:
            return int((self.rundir / self.nb_member(i) / "ovsdb-server.pid").read_text())
        except (OSError, ValueError):
            return None

    def nb_leader(self) -> int | None:
        """The member that is the Raft leader now, as the members themselves say."""
        for i in range(1, self.nb_cluster + 1):
            out = subprocess.run(["ovs-appctl", "-t", self.nb_ctl(i), "cluster/status", "Packetwalk"],
                                 capture_output=True, text=True).stdout
            if re.search(r"^Role: leader", out, re.M):
                return i
        return None

    def _build_physical(self) -> None:
        """The seed's first scenario, no overlay: hosts with a plain vSwitch (VM ports are
        access ports of their VLAN), trunks to one physical switch (pw-ul, a plain learning
        bridge that carries the 802.1Q tags), and one central router on a stick."""
        t = self.topo
        setLogLevel("error" if not self.verbose else "info")
        self.progress(f"building {t.name} (physical baseline): {len(t.hypervisors)} hosts, "
                      f"{len(t.routers)} router, {len(t.vms)} VMs")
        net = self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
        switch = net.addSwitch(UNDERLAY, cls=LinuxBridge, dpid="1")
        devices = [h.name for h in t.hypervisors] + [r.name for r in t.routers]
        for name in devices:
            node = net.addHost(name, cls=HypervisorNode, ip=None, rundir=str(self.rundir / name))
            net.addLink(node, switch, intfName1=UPLINK, intfName2=f"{UNDERLAY}-{name}")
        self._add_vms()
        self._start_net()
        for hv in t.hypervisors:
            self.progress(f"starting {hv.name}: a vSwitch with VLAN access ports")
            physical.start_host(self.hv(hv.name).ovs, UPLINK,
                                {vm.name: t.switch(vm.switch).vlan for vm in self.vms_on(hv.name)})
        for r in t.routers:
            self.progress(f"starting {r.name}: the central router")
            physical.start_router(self.hv(r.name).ovs, UPLINK,
                                  [(t.switch(i.switch).vlan, f"{i.ip}/{t.switch(i.switch).subnet.prefixlen}")
                                   for i in r.interfaces])
        for name in devices:
            for daemon, pid in self.hv(name).ovs.pids().items():
                self.manifest.add_pid(pid, daemon)

    def _add_vms(self) -> None:
        t, net = self.topo, self.net
        for vm in t.vms:
            interrupts.checkpoint()
            gw = t.gateway(vm)
            node = net.addHost(vm.name, cls=VM, ip=f"{vm.ip}/{t.switch(vm.switch).subnet.prefixlen}",
                               mac=vm.mac, defaultRoute=f"via {gw}" if gw else None)
            net.addLink(node, net[vm.hypervisor], intfName1="eth0", intfName2=vm.name)

    def _start_net(self) -> None:
        """Build and start the Mininet network; record its shells; name its namespaces pw-*;
        keep the host's firewall off the lab's own bridges."""
        net = self.net
        net.build()
        for node in net.hosts + net.switches:
            self.manifest.add_pid(node.pid, "bash")
        for node in net.hosts:
            name = cleanup.PREFIX + node.name
            subprocess.run(["ip", "netns", "attach", name, str(node.pid)], check=True)
        net.start()
        for bridge in net.switches:
            subprocess.run(["ip", "link", "set", bridge.name, "type", "bridge", "nf_call_iptables", "0",
                            "nf_call_ip6tables", "0", "nf_call_arptables", "0"], check=True)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{API_PORT}"

    @property
    def db_dir(self) -> Path:
        return self.rundir / "controller" / "db"

    def _start_controller(self, load_intent: bool = True) -> None:
        """The controller with its embedded database in the lab's run dir; then the
        topology's logical part goes in through its API, as any client's would."""
        t = self.topo
        d = self.rundir / "controller"
        d.mkdir(parents=True, exist_ok=True)
        self.progress(f"starting the controller on {t.controller_ip}:{OPENFLOW_PORT}")
        log = open(d / "controller.log", "a")
        db = ["--nb", self.nb_remote] if self.nb_cluster else ["--db-dir", str(self.db_dir)]
        cmd = [sys.executable, "-m", "packetwalk.cli", "controller", *db,
               "--ofp-listen-host", str(t.controller_ip), "--ofp-tcp-listen-port", str(OPENFLOW_PORT),
               "--state-file", str(self.state_file), "--api-port", str(API_PORT)]
        if self.pki:        # os-ken then serves OpenFlow over SSL only; the same files open OVSDB
            own = self.pki.controller
            cmd += ["--ofp-ssl-listen-port", str(OPENFLOW_PORT), "--ctl-privkey", str(own.key),
                    "--ctl-cert", str(own.cert), "--ca-certs", str(own.ca)]
        self.controller = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.manifest.add_pid(self.controller.pid, Path(sys.executable).name)

        def listening():
            if self.controller.poll() is not None:
                raise LabError(f"the controller exited ({self.controller.returncode}); see {d / 'controller.log'}")
            with socket.socket() as s:
                return s.connect_ex((str(t.controller_ip), OPENFLOW_PORT)) == 0
        wait_for(listening, 30, "the controller to listen")
        if not self.nb_cluster:
            self._record_db_server()
        if load_intent:
            self.load_intent()

    def _record_db_server(self) -> None:
        pidfile = self.db_dir / "ovsdb-server.pid"
        pid = wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10,
                       "the controller's database server")
        self.manifest.add_pid(int(pid), "ovsdb-server")

    def load_intent(self) -> dict:
        """The topology's logical part into the controller, through its API (PUT /v1/intent)."""
        from packetwalk.apply import ApplyError, apply
        self.progress("loading the logical network into the controller (PUT /v1/intent)")
        try:
            return wait_for(lambda: self._try_apply(apply), 30, "the controller's API to take the intent")
        except ApplyError as e:
            raise LabError(str(e)) from None

    def _try_apply(self, apply):
        from packetwalk.apply import ApplyError
        try:
            return apply(self.api, intent_dict(self.topo), self.topo.source)
        except ApplyError as e:
            if "no controller API" in str(e) or "unreachable" in str(e):
                return None             # not up yet
            raise

    def _start_hypervisors(self) -> None:
        for hv in self.topo.hypervisors:
            self.progress(f"starting {hv.name}: ovsdb-server + ovs-vswitchd, VTEP {hv.vtep_ip}")
            node = self.hv(hv.name)
            try:
                node.ovs.start()
                for pid_name, pid in node.ovs.pids().items():
                    self.manifest.add_pid(pid, pid_name)
                for vm in self.vms_on(hv.name):
                    sw = self.topo.switch(vm.switch)
                    node.ovs.attach_vm(vm.name, vm.name, vm.mac, sw.name, sw.vni)
            except HypervisorError as e:
                raise LabError(str(e)) from e

    def _wait_ready(self) -> None:
        """Every hypervisor connected (OpenFlow and OVSDB) with its VM ports known; every VM's
        binding learned (from the gratuitous ARP it sends when it comes up); every tunnel
        the topology implies made by the controller and up (BFD), so no first packet waits
        on VTEP resolution."""
        self.progress("waiting for hypervisors to connect to the controller")
        want = {hv.name: {vm.name for vm in self.vms_on(hv.name)} for hv in self.topo.hypervisors}

        def connected():
            hvs = self.controller_state().get("hypervisors", {})
            return all(n in hvs and hvs[n]["openflow"] and hvs[n]["ovsdb"]
                       and vms <= {a["vm"] for a in hvs[n]["attachments"].values()}
                       for n, vms in want.items())
        wait_for(connected, 60, "every hypervisor to connect to the controller")

        self.progress("VMs announce themselves (gratuitous ARP); tunnels come up (BFD)")
        deadline = time.monotonic() + 60
        while True:
            state = self.controller_state()
            unlearned = [vm for vm in self.topo.vms if not self._learned(state, vm)]
            down = self._tunnels_down(state)
            if not unlearned and not down:
                return
            if time.monotonic() > deadline:
                raise LabError("timed out waiting for " + ", ".join(
                    [f"the binding of {vm.name}" for vm in unlearned] + [f"tunnel {t}" for t in down]))
            for vm in unlearned:           # not heard yet (its port's flows may have been late)
                self.vm(vm.name).announce()
            try:
                wait_for(lambda: all(self._learned(self.controller_state(), vm) for vm in unlearned),
                         1.0, "announcements")
            except LabError:
                pass

    def _learned(self, state: dict, vm) -> bool:
        vni = str(self.topo.switch(vm.switch).vni)
        return state.get("arp_table", {}).get(vni, {}).get(str(vm.ip), {}).get("mac") == vm.mac

    def _tunnels_down(self, state: dict) -> list[str]:
        hvs = state.get("hypervisors", {})
        down = []
        for a, b in itertools.permutations(self.topo.hypervisors, 2):
            shared = ({vm.switch for vm in self.vms_on(a.name)}
                      & {vm.switch for vm in self.vms_on(b.name)})
            if shared and hvs.get(a.name, {}).get("tunnels", {}).get(b.name, {}).get("bfd") != "up":
                down.append(f"{a.name}->{b.name}")
        return down

    # --- operations on a running lab ------------------------------------------------------
    def restart_controller(self) -> None:
        """Stop the controller process and start a new one (the hypervisors reconnect)."""
        self._stop_controller()
        self.state_file.unlink(missing_ok=True)
        self._start_controller(load_intent=False)      # intent is in its database
        self._wait_ready()

    def kill_controller(self) -> None:
        """kill -9: the controller gets no chance to clean up (its embedded database goes with it)."""
        if self.controller and self.controller.poll() is None:
            self.controller.kill()
            self.controller.wait()

    def start_controller(self) -> None:
        """Start the controller again on the same database (intent comes from there)."""
        self._start_controller(load_intent=False)

    def add_vm(self, name: str, hypervisor: str, ip: str, mac: str, prefixlen: int, gateway: str | None,
               iface_id: str | None = None) -> VM:
        """A VM that the topology file does not have, plugged into `hypervisor`'s br-int as
        logical port `iface_id` (default: its name). The logical port itself is the caller's
        to create, through the API."""
        net, hv = self.net, self.hv(hypervisor)
        node = net.addHost(name, cls=VM, ip=f"{ip}/{prefixlen}", mac=mac,
                           defaultRoute=f"via {gateway}" if gateway else None)
        self.manifest.add_pid(node.pid, "bash")
        subprocess.run(["ip", "netns", "attach", cleanup.PREFIX + name, str(node.pid)], check=True)
        net.addLink(node, hv, intfName1="eth0", intfName2=name)
        node.config(ip=f"{ip}/{prefixlen}", mac=mac, defaultRoute=f"via {gateway}" if gateway else None)
        hv.ovs.sh(f"ip link set {name} up")
        hv.ovs.vsctl(f"add-port br-int {name}", "--", f"set interface {name}",
                     f"external_ids:iface-id={iface_id or name}", f"external_ids:attached-mac={mac}")
        self.placement[name] = hypervisor
        self.extra_vms[name] = (ip, mac)
        return node

    def move_vm(self, name: str, to: str) -> None:
        """vMotion: the VM's port leaves its hypervisor's br-int and joins `to`'s, same
        MAC and IP; the VM keeps its interface and sends a gratuitous ARP from the new place."""
        vm, src, dst = self.topo.vm(name), self.hv(self.placement[name]), self.hv(to)
        sw = self.topo.switch(vm.switch)
        # As vMotion quiesces a VM before its switchover: the port is unbound first, and unplugged
        # only once the controller's hold on what arrives for it is confirmed on every hypervisor
        # (its change realized: nothing is lost in the cable).
        src.ovs.unbind_vm(name)

        def let_go() -> bool:
            state = self.controller_state()
            realized = state.get("realized", {})
            return name not in {a["vm"] for a in state.get("hypervisors", {}).get(src.name, {})
                                .get("attachments", {}).values()} \
                and realized.get("realized", -1) >= realized.get("generation", 0)
        wait_for(let_go, 10, f"the controller to let go of {name} on {src.name}", 0.005)
        src.ovs.detach_vm(name)
        src.ovs.sh(f"ip link set {name} netns {dst.pid}")
        dst.ovs.attach_vm(name, name, vm.mac, sw.name, sw.vni)
        self.placement[name] = to
        self.write_lab_file()
        self.vm(name).announce(wait=False)

    def _stop_controller(self) -> None:
        if self.controller and self.controller.poll() is None:
            self.controller.terminate()
            try:
                self.controller.wait(10)
            except subprocess.TimeoutExpired:
                self.controller.kill()
                self.controller.wait()

    def write_lab_file(self) -> None:
        """Record what is running, for commands run from another shell."""
        info = {"topology": str(Path(self.topo.source).resolve()), "kind": self.topo.kind, "ssl": bool(self.pki),
                "rundir": str(self.rundir), "placement": self.placement,
                "api": None if self.topo.kind == "physical" else f"http://127.0.0.1:{API_PORT}"}
        (self.rundir / LAB_FILE).write_text(json.dumps(info, indent=1))

    def stop(self) -> None:
        """Tear everything down; a SIGINT/SIGTERM meanwhile waits until it is done (and is
        then raised as interrupts.Interrupted)."""
        with interrupts.deferred():
            try:
                (self.rundir / LAB_FILE).unlink(missing_ok=True)
                self._stop_controller()
                if self.net is not None:
                    net, self.net = self.net, None
                    for node in net.hosts + net.switches:
                        _settle(node)
                    net.stop()             # HypervisorNode.terminate stops each node's OVS by pid
            finally:
                cleanup.clean(self.rundir)     # whatever is left: by pid and by name; logs stay
        interrupts.checkpoint()
