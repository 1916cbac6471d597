"""The lab: a topology file made real. Hypervisors (namespaced Open vSwitch), VMs (Mininet
hosts), the underlay "physical switch" and the management network (Linux bridges), and
the controller process that every hypervisor connects to.

    with Lab(topology) as lab:       # everything up, or everything torn down and LabError
        lab.vm("vm1").cmd("ping -c1 10.1.1.12")
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import urllib.request
import sys
import threading
import time
from pathlib import Path

from mininet.log import setLogLevel
from mininet.net import Mininet

from dataplane import physical
from dataplane.ofprobe import BrIntProbe, ProbeError
from dataplane.pki import LabPKI
from mininet_topos.nbcluster import NbCluster, NbClusterError
from dataplane.hypervisor import MGMT, OPENFLOW_PORT, UPLINK, HypervisorError, VmPort, ovs_env
from mininet_topos import bringup, capacity, cleanup, interrupts, migration, readiness
from mininet_topos.nodes import NO_NETFILTER, VM, Bridge, HypervisorNode
from mininet_topos.topology import Topology, intent_dict

RUNDIR = Path(os.environ.get("PACKETWALK_RUNDIR", "/run/packetwalk"))
API_PORT = 8181          # the controller's northbound REST API, on loopback
LAB_FILE = "lab.json"    # what a running lab is, for `packetwalk trace/show/diagram` in another shell
UNDERLAY = cleanup.PREFIX + "ul"
MGMT_BRIDGE = cleanup.PREFIX + "mg"


TELL_EVERY = 5.0         # s between progress lines saying what a starting lab still waits for
POLL = 0.02              # s between looks at the controller's state while the lab comes up
ANNOUNCE_AGAIN = 0.25    # s before a VM whose binding is not learned announces itself again (its
                         # first may beat the flows: the state says "sent", not "installed")


class LabError(RuntimeError):
    pass


def wait_for(condition, timeout: float, what, interval: float = 0.05):
    """Poll `condition()` until it returns something truthy; LabError naming `what` (a
    string, or a function that says what is still missing) if not."""
    deadline = time.monotonic() + timeout
    while True:
        interrupts.checkpoint()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


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
                 ssl=False, controllers: int = 0):
        self.topo = topology
        self.nb_cluster = nb_cluster      # 0: the controller's embedded database; N: an N-member Raft cluster
        self.nb = NbCluster(nb_cluster, topology.management, Path(rundir)) if nb_cluster else None
        self.ssl = ssl           # OpenFlow and the hypervisors' OVSDB over SSL, with the lab's own PKI
        self.pki: LabPKI | None = None
        # 0: one controller in the root namespace; N: N controllers, each in its own namespace
        self.controllers = [f"ctl{i}" for i in range(1, controllers + 1)]
        self.procs: dict[str, subprocess.Popen] = {}     # controller name -> its process (several)
        self.api = f"http://127.0.0.1:{API_PORT}"       # the API lab clients use (a live controller's)
        self.rundir = Path(rundir)
        self._progress = progress or (lambda msg: None)
        self.verbose = verbose
        self.net: Mininet | None = None
        self.controller: subprocess.Popen | None = None
        self.manifest: cleanup.Manifest | None = None
        self.placement = {vm.name: vm.hypervisor for vm in topology.vms}   # VM -> hypervisor now
        self.extra_vms = {}               # VMs added while running: name -> (ip, mac, switch)
        self._state_cache = (None, {})

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

    def controller_state(self, name: str | None = None) -> dict:
        """A controller's tables as its state file has them (several controllers: the named
        one, else the one whose API the lab uses), read again only once the file changed:
        at 64 hypervisors it is a megabyte, and the lab polls it while it starts."""
        if name is None and self.controllers:
            name = next((c for c in self.controllers if self.controller_api(c) == self.api), self.controllers[0])
        path = self.rundir / name / "state.json" if name else self.state_file
        try:
            st = path.stat()
            key = (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
            if self._state_cache[0] != key:
                self._state_cache = (key, json.loads(path.read_text()))
            return self._state_cache[1]
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
            shutil.rmtree(self.rundir, ignore_errors=True)   # logs of the last run; nothing is running
            self.rundir.mkdir(parents=True)
            self.manifest = cleanup.Manifest(self.rundir)
            try:
                if self.ssl and self.topo.kind != "physical":
                    self.progress("making the lab's CAs and certificates")
                    self.pki = LabPKI(self.rundir / "pki", [hv.name for hv in self.topo.hypervisors],
                                      self.nb.members if self.nb else [])
                    if self.nb:
                        self.nb.pki = self.pki
                if self.topo.kind == "physical":
                    self._build_physical()
                else:
                    self._build()              # the controller starts meanwhile
                    self._start_hypervisors()
                    self._wait_ready()
                self.write_lab_file()
            except bringup.BringupError as e:
                self.stop()
                raise LabError(str(e)) from None
            except BaseException:
                self.stop()      # raises Interrupted if a signal came (the error it caused is its cause)
                raise
        interrupts.checkpoint()

    def _build(self) -> None:
        t = self.topo
        setLogLevel("error" if not self.verbose else "info")
        self.progress(f"building {t.name}: {len(t.hypervisors)} hypervisors, {len(t.vms)} VMs")
        self._management_network()
        if not self.nb_cluster:        # (a Raft cluster's members are Mininet hosts: they come first)
            self._launch_controller()  # it starts, and takes the intent, while Mininet builds
        net = self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
        mgmt = net.addSwitch(MGMT_BRIDGE, cls=Bridge, dpid="2")
        net.addSwitch(UNDERLAY, cls=Bridge, dpid="1")
        scheme = "ssl" if self.pki else "tcp"
        ctl = " ".join(f"{scheme}:{self.controller_ip(c)}:{OPENFLOW_PORT}" for c in self.controllers) \
            or f"{scheme}:{t.controller_ip}:{OPENFLOW_PORT}"
        hosts = [(hv.name, dict(cls=HypervisorNode, ip=None, rundir=str(self.rundir / hv.name), dpid=i,
                                vtep_cidr=f"{hv.vtep_ip}/{t.underlay.prefixlen}", mgmt_ip=str(hv.mgmt_ip),
                                controller=ctl, ssl=self.pki.hypervisors[hv.name] if self.pki else None))
                 for i, hv in enumerate(t.hypervisors, start=1)]
        for vm in t.vms:
            gw = t.gateway(vm)
            hosts.append((vm.name, dict(cls=VM, ip=f"{vm.ip}/{t.switch(vm.switch).subnet.prefixlen}", mac=vm.mac,
                                        defaultRoute=f"via {gw}" if gw else None)))
        bringup.add_hosts(net, hosts)
        links = [link for hv in t.hypervisors for link in ((hv.name, UPLINK, UNDERLAY, f"{UNDERLAY}-{hv.name}"),
                                                           (hv.name, MGMT, MGMT_BRIDGE, f"{MGMT_BRIDGE}-{hv.name}"))]
        bringup.add_links(net, links + [(vm.name, "eth0", vm.hypervisor, vm.name) for vm in t.vms])
        for name in self.controllers:      # several controllers: each in a namespace of its own
            node = net.addHost(name, ip=None)
            net.addLink(node, mgmt, intfName1="eth0", intfName2=f"{MGMT_BRIDGE}-{name}",
                        params1={"ip": f"{self.controller_ip(name)}/{t.management.prefixlen}"})
        if self.nb:
            self.nb.add_hosts(net, mgmt)
        self._start_net(configure_vms_at_once=True)
        if self.nb:
            self.progress(f"starting the controller's database: a {self.nb.size}-member Raft cluster"
                          + (" over SSL" if self.pki else ""))
            try:
                self.nb.start(self.manifest, wait_for)
            except NbClusterError as e:
                raise LabError(str(e)) from None
            self._launch_controller()

    def _management_network(self) -> None:
        """The management bridge with the controller's address, before anything else."""
        t = self.topo
        bringup.ip_batch([f"link add {MGMT_BRIDGE} type bridge {NO_NETFILTER}",
                          f"addr add {t.controller_ip}/{t.management.prefixlen} dev {MGMT_BRIDGE}",
                          f"link set {MGMT_BRIDGE} up"], f"the management network {MGMT_BRIDGE}")

    def _build_physical(self) -> None:
        """The seed's first scenario, no overlay: hosts with a plain vSwitch (VM ports are
        access ports of their VLAN), trunks to one physical switch (pw-ul, a plain learning
        bridge that carries the 802.1Q tags), and one central router on a stick."""
        t = self.topo
        setLogLevel("error" if not self.verbose else "info")
        self.progress(f"building {t.name} (physical baseline): {len(t.hypervisors)} hosts, "
                      f"{len(t.routers)} router, {len(t.vms)} VMs")
        net = self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False)
        switch = net.addSwitch(UNDERLAY, cls=Bridge, dpid="1")
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

    def _start_net(self, configure_vms_at_once: bool = False) -> None:
        """Configure and start the Mininet network (every VM at once: hypervisors configure
        themselves in their start script); record its shells; name its namespaces pw-*."""
        net = self.net
        if configure_vms_at_once:
            vms = [h for h in net.hosts if isinstance(h, VM)]
            bringup.run_on([(vm, vm.config_command(**vm.params)) for vm in vms])
            for host in net.hosts:
                if not isinstance(host, (VM, HypervisorNode)):
                    host.configDefault()
            net.built = True
        else:
            net.build()
        self.manifest.add_pids([(node.pid, "bash") for node in net.hosts + net.switches])
        bringup.ip_batch([f"netns attach {cleanup.PREFIX}{node.name} {node.pid}" for node in net.hosts],
                         "the lab's namespace names")
        net.start()

    def controller_ip(self, name: str) -> str:
        return str(self.topo.management.broadcast_address - 30 - int(name.removeprefix("ctl")))

    def controller_api(self, name: str) -> str:
        return f"http://{self.controller_ip(name)}:{API_PORT}"

    def controller_alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    @property
    def db_dir(self) -> Path:
        return self.rundir / "controller" / "db"

    def _launch_controller(self, load_intent: bool = True) -> None:
        """The controller with its embedded database in the lab's run dir (or the Raft
        cluster's); then, in the background while the rest starts, the topology's logical
        part goes in through its API, as any client's would: one PUT (see _controller_ready)."""
        self._intent_thread = None
        if self.controllers:                # several, each in its namespace: they listen before this returns
            for name in self.controllers:
                self.start_controller(name)
        else:
            self._launch_one()
        self._intent_loaded: list = []
        self._intent_thread = threading.Thread(target=self._load_intent_into, args=(self._intent_loaded,),
                                               daemon=True) if load_intent else None
        if self._intent_thread:
            self._intent_thread.start()

    def _launch_one(self) -> None:
        t = self.topo
        d = self.rundir / "controller"
        d.mkdir(parents=True, exist_ok=True)
        self.progress(f"starting the controller (ryu-manager packetwalk) on {t.controller_ip}:{OPENFLOW_PORT}")
        log = open(d / "controller.log", "a")
        db = self.nb.controller_args() if self.nb else ["--db-dir", str(self.db_dir)]
        cmd = [sys.executable, "-m", "packetwalk.ryu_manager", "packetwalk", *db,     # `ryu-manager packetwalk ...`
               "--ofp-listen-host", str(t.controller_ip), "--ofp-tcp-listen-port", str(OPENFLOW_PORT),
               "--state-file", str(self.state_file), "--api-port", str(API_PORT), *self._tls_args(),
               *self._liveness_args()]
        env = {**os.environ, "EVENTLET_NO_GREENDNS": "yes"}   # no DNS here: 0.1 s less to start
        self.controller = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.manifest.add_pid(self.controller.pid, Path(sys.executable).name)

    def _liveness_args(self) -> list[str]:
        """A big lab: more unanswered echoes before a hypervisor is down (readiness.echo_misses),
        in an os-ken configuration file (its echo options are not command-line options)."""
        misses = readiness.echo_misses(self.topo)
        if misses is None:
            return []
        path = self.rundir / "os-ken.conf"
        path.write_text(f"[DEFAULT]\nmaximum_unreplied_echo_requests = {misses}\n")
        return ["--config-file", str(path)]

    def _tls_args(self) -> list[str]:
        """With the lab's PKI: os-ken serves OpenFlow over SSL only, and the same key and
        certificate open the hypervisors' OVSDB and the database (controller/tls.py)."""
        if not self.pki:
            return []
        own = self.pki.controller
        return ["--ofp-ssl-listen-port", str(OPENFLOW_PORT), "--ctl-privkey", str(own.key),
                "--ctl-cert", str(own.cert), "--ca-certs", str(own.ca)]

    def _load_intent_into(self, outcome: list) -> None:
        try:
            outcome.append(self.load_intent())
        except BaseException as e:      # handed to the lab's thread by _controller_ready
            outcome.append(e)

    def _controller_ready(self) -> None:
        """The controller listens (OpenFlow), its database server is recorded, the intent is in."""
        t, log = self.topo, self.rundir / "controller" / "controller.log"

        def listening():
            if self.controller.poll() is not None:
                raise LabError(f"the controller exited ({self.controller.returncode}): {_last_line(log)}; see {log}")
            return _connects(str(t.controller_ip), OPENFLOW_PORT)
        if not self.controllers:
            wait_for(listening, 30, f"the controller to listen on {t.controller_ip}:{OPENFLOW_PORT} (see {log})")
        if not self.nb_cluster:
            self._record_db_server()
        if self._intent_thread:
            self._intent_thread.join()
            self._intent_thread = None
            if isinstance(self._intent_loaded[0], BaseException):
                raise self._intent_loaded[0]

    def _spawn(self, name: str, ip: str, netns: str | None, db: list[str], state: Path, extra: list[str]):
        d = self.rundir / name
        d.mkdir(parents=True, exist_ok=True)
        log = open(d / "controller.log", "a")
        cmd = [sys.executable, "-m", "packetwalk.cli", "controller", *db, "--controller-name", name,
               "--ofp-listen-host", ip, "--ofp-tcp-listen-port", str(OPENFLOW_PORT), "--state-file", str(state),
               *self._tls_args(), *self._liveness_args(), *extra]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]      # ip execs the controller: one pid
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.manifest.add_pid(proc.pid, Path(sys.executable).name)

        def listening():
            if proc.poll() is not None:
                raise LabError(f"the controller {name} exited ({proc.returncode}): {_last_line(d / 'controller.log')}; "
                               f"see {d / 'controller.log'}")
            return _connects(ip, OPENFLOW_PORT)     # a namespaced controller's IP is on pw-mg: reachable here
        wait_for(listening, 30, f"the controller {name} to listen")
        return proc

    def start_controller(self, name: str | None = None) -> None:
        """Start a controller (again) on the same database: its intent comes from there."""
        if name is None and not self.controllers:
            self._launch_controller(load_intent=False)
            return self._controller_ready()
        if name not in self.controllers:
            raise LabError(f"no controller {name!r} in this lab (it has {', '.join(self.controllers)})")
        ip = self.controller_ip(name)
        self.progress(f"starting controller {name} on {ip}:{OPENFLOW_PORT} (namespace {cleanup.PREFIX}{name})")
        self.procs[name] = self._spawn(name, ip, cleanup.PREFIX + name, self.nb.controller_args(),
                                       self.rundir / name / "state.json",
                                       ["--api-listen-host", ip, "--api-port", str(API_PORT),
                                        "--api-token-file", str(self._api_token())])
        if not any(self.controller_alive(c) and self.controller_api(c) == self.api for c in self.controllers):
            self.api = self.controller_api(name)

    def _api_token(self) -> Path:
        """Controllers in namespaces serve their API off loopback: only with a bearer token
        (controller/api.py). The lab makes one, and this process's urllib clients send it."""
        path = self.rundir / "api-token"
        if not path.exists():
            path.write_text(secrets.token_hex(16))
            path.chmod(0o600)
            token = path.read_text()

            class Bearer(urllib.request.BaseHandler):
                def http_request(self, req):
                    if not req.has_header("Authorization"):
                        req.add_unredirected_header("Authorization", f"Bearer {token}")
                    return req
            urllib.request.install_opener(urllib.request.build_opener(Bearer()))
        return path

    def add_controller(self, name: str) -> None:
        """A controller that joins a running lab: its namespace, its link, its process."""
        node = self.net.addHost(name, ip=None)
        self.manifest.add_pid(node.pid, "bash")
        subprocess.run(["ip", "netns", "attach", cleanup.PREFIX + name, str(node.pid)], check=True)
        self.net.addLink(node, self.net[MGMT_BRIDGE], intfName1="eth0", intfName2=f"{MGMT_BRIDGE}-{name}")
        subprocess.run(["ip", "link", "set", f"{MGMT_BRIDGE}-{name}", "master", MGMT_BRIDGE, "up"], check=True)
        node.setIP(f"{self.controller_ip(name)}/{self.topo.management.prefixlen}", intf="eth0")
        node.cmd("ip link set eth0 up; ip link set lo up")
        self.controllers.append(name)
        self.start_controller(name)
        scheme = "ssl" if self.pki else "tcp"
        target = " ".join(f"{scheme}:{self.controller_ip(c)}:{OPENFLOW_PORT}" for c in self.controllers)
        for hv in self.topo.hypervisors:
            self.hv(hv.name).ovs.vsctl(f"set-controller br-int {target}")

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
        """Every hypervisor at once, all but its controller (see HypervisorOVS.start_scripts);
        then, once the controller listens, every hypervisor's controller."""
        hvs = [self.hv(h.name) for h in self.topo.hypervisors]
        self.progress(f"starting {len(hvs)} hypervisors: ovsdb-server + ovs-vswitchd each, VTEPs "
                      f"{self.topo.hypervisors[0].vtep_ip}..{self.topo.hypervisors[-1].vtep_ip}")
        scripts = {}
        for node in hvs:
            ports = [VmPort(vm.name, vm.name, vm.mac, vm.switch, self.topo.switch(vm.switch).vni)
                     for vm in self.vms_on(node.name)]
            first, then = node.ovs.start_scripts(ports)
            mgmt = f"{self.topo.hypervisor(node.name).mgmt_ip}/{self.topo.management.prefixlen}"
            scripts[node.name] = (f"ip link set lo up && ip addr add {mgmt} dev {MGMT} && ip link set {MGMT} up && "
                                  + first, then)
        try:
            for phase in (0, 1):
                if phase == 1:
                    self.progress("the hypervisors' daemons are up; waiting for the controller to listen")
                    self._controller_ready()
                    self.progress("the controller listens and holds the intent; hypervisors connect")
                commands = [(node, node.ovs.wrapped(scripts[node.name][phase])) for node in hvs]
                outputs = bringup.run_on(commands)
                # record the daemons before any error: stop() needs them
                if phase == 0:
                    self.manifest.add_pids([(pid, daemon) for node in hvs for daemon, pid in node.ovs.pids().items()])
                for node, out in zip(hvs, outputs):
                    node.ovs.checked(scripts[node.name][phase], out)
        except HypervisorError as e:
            raise LabError(str(e)) from e

    def _wait_ready(self) -> None:
        """Poll until ready (see readiness.py), each hypervisor's br-int asked whether it holds
        what the controller sent. A VM whose binding the controller has not got (not one
        configured on its logical port) announces itself (gratuitous ARP) as soon as its
        hypervisor holds its flows, and again if not heard. A timeout that grows with the
        lab's size ends in a LabError that lists what is missing."""
        self.progress("waiting for the controller: hypervisors, ports, flows, bindings, tunnels")
        exp = readiness.expect(self.topo, self.placement)
        limit = readiness.timeout(self.topo)
        start = time.monotonic()
        announced: dict[str, float] = {}
        neighbours: dict[str, set[str]] = {}
        reached: set[str] = set()
        told = start
        with contextlib.closing(BrIntProbe()) as probe:
            while True:
                now = time.monotonic()
                state = self.controller_state()
                due = [vm for vm in exp.bindings if now - announced.get(vm, -ANNOUNCE_AGAIN) >= ANNOUNCE_AGAIN
                       and not readiness.learned(exp, state, vm)
                       and readiness.hypervisor_ready(exp, state, self.placement[vm])]
                if due:
                    bringup.run_on([(self.vm(vm), self.vm(vm).announce_command()) for vm in due])
                    announced.update((vm, now) for vm in due)
                missing = readiness.missing(exp, state)
                for stage in readiness.stages(exp, state, missing):
                    if stage not in reached:
                        reached.add(stage)
                        self.progress(f"{stage} ({time.monotonic() - start:.2f} s of waiting)")
                missing = missing or self._unconfirmed(exp, state, probe)
                if not missing and "confirmed" not in reached:
                    reached.add("confirmed")
                    self.progress(f"every br-int holds it; resolving the VTEPs ({time.monotonic() - start:.2f} s "
                                  "of waiting)")
                if not missing:
                    pending = [hv for hv, r in exp.tunnels.items() if set(r.values()) - neighbours.get(hv, set())]
                    neighbours.update(self._neighbours(pending))
                    missing = readiness.unresolved(exp, neighbours)
                if not missing:
                    self.progress(f"ready after {time.monotonic() - start:.1f} s of waiting")
                    return
                if now - told >= TELL_EVERY or os.environ.get("PACKETWALK_DEBUG_READY"):
                    self.progress(f"still waiting ({now - start:.1f} s) for: {readiness.describe(missing, 3)}")
                    told = now
                if now - start > limit:
                    raise LabError(f"the lab is not ready after {limit:.0f} s: " + readiness.describe(missing))
                time.sleep(POLL * (1 + len(exp.ports) / 8))     # a big lab's checks cost more

    def _unconfirmed(self, exp, state, probe: BrIntProbe) -> list[str]:
        try:
            observed = probe.observe({hv: self.rundir / hv / "br-int.mgmt" for hv in exp.ports})
        except ProbeError as e:
            probe.close()
            return [str(e)]
        return readiness.unconfirmed(exp, state, observed)

    def _neighbours(self, hypervisors: list[str]) -> dict[str, set[str]]:
        """hypervisor -> the IPs its datapath has resolved (tnl/neigh/show), asked all at once
        (ovs-appctl reaches a hypervisor's ovs-vswitchd through its run directory)."""
        procs = {hv: subprocess.Popen(["ovs-appctl", "--timeout=5", "tnl/neigh/show"], text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      env={**os.environ, **ovs_env(self.rundir / hv)})
                 for hv in hypervisors}
        return {hv: readiness.neighbour_ips(p.communicate()[0]) for hv, p in procs.items()}

    # --- operations on a running lab ------------------------------------------------------
    def restart_controller(self) -> None:
        """Stop the controller process and start a new one (the hypervisors reconnect)."""
        self._stop_controller()
        self.state_file.unlink(missing_ok=True)
        self._launch_controller(load_intent=False)      # intent is in its database
        self._controller_ready()
        self._wait_ready()

    def kill_controller(self, name: str | None = None) -> None:
        """kill -9: the controller gets no chance to clean up (its embedded database goes with it)."""
        if name is not None:
            proc = self.procs.get(name)
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
            return
        if self.controller and self.controller.poll() is None:
            self.controller.kill()
            self.controller.wait()

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
        """A live migration of VM `name` to hypervisor `to` (mininet_topos/migration.py): its
        port appears there with the same iface-id, the VM switches over once the controller
        has made that port, then its old port goes."""
        migration.live_migrate(self, name, to, lambda ofport: self.port_made(name, to, ofport))

    def port_made(self, name: str, hypervisor: str, ofport: int | None = None) -> bool:
        """The controller has VM `name`'s port on `hypervisor` (the one OVS numbered `ofport`,
        if given: the state file may still show an earlier port of the VM there, from before
        its last move, when the controller publishes it seldom under load) and its change is
        realized."""
        state = self.controller_state()
        realized = state.get("realized", {})
        attached = state.get("hypervisors", {}).get(hypervisor, {}).get("attachments", {}).values()
        return any(a["vm"] == name and ofport in (None, a["ofport"]) for a in attached) \
            and realized.get("realized", -1) >= realized.get("generation", 0)

    def _stop_controller(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
                "api": None if self.topo.kind == "physical" else self.api, "controllers": self.controllers}
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


def _last_line(log: Path) -> str:
    """What a process that stopped said last (its reason, usually)."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:300] if lines else "nothing logged"


def _connects(ip: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((ip, port)) == 0
