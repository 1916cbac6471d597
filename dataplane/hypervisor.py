"""An emulated hypervisor: its own ovsdb-server and ovs-vswitchd (userspace datapath),
inside its own network namespace, with its own run directory.

    br-int  VM ports; fail-mode secure; OpenFlow 1.3 to the controller
    br-phy  the uplink (vmnic0) and, on its internal port, the VTEP IP: OVS's userspace
            VXLAN routes encapsulated packets through it
    vmk0    the management interface (not in OVS): reaches the controller; ovsdb-server
            listens there for the controller's OVSDB connection

`run` executes one shell command inside the hypervisor's namespace and returns its
output (a Mininet node's `cmd`); every OVS command runs with OVS_RUNDIR set to the run
directory, so plain `ovs-vsctl`, `ovs-ofctl dump-flows br-int` and `ovs-appctl` there
talk to this hypervisor's switch.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import shlex
import signal
import time
from pathlib import Path
from typing import Callable, Sequence

from dataplane.pki import Credentials

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
UPLINK = "vmnic0"      # ESXi's names: the physical uplink ...
MGMT = "vmk0"          # ... and the management vmkernel port
OVSDB_PORT = 6640
OPENFLOW_PORT = 6653
DAEMONS = ("ovsdb-server", "ovs-vswitchd")


class HypervisorError(RuntimeError):
    pass


def ovs_env(rundir: str | os.PathLike) -> dict[str, str]:
    d = str(rundir)
    return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d, "OVS_SYSCONFDIR": d}


# OVS's userspace tunnels route by OVS's own table. By default that mirrors the kernel's, and
# OVS rebuilds it on every link event in the namespace (lib/route-table.c: each RTM_NEWLINK or
# RTM_DELLINK empties it, ovs_router_flush, which also drops the VTEP's decap entries, then
# dumps the kernel's routes again). A VM port appearing, changing carrier or going is a burst
# of such events; the revalidator threads re-translate the tunnel flows meanwhile and some see
# the table empty: that flow drops frames for a few ms (README, "OVS's own route to the underlay").
# A hypervisor whose VM ports are kernel devices keeps its own route to the underlay instead.
VTEP_ROUTING = "--disable-system-route"
ROUTE_TRIES = 50                # x 0.1 s: ovs-vswitchd reads br-phy's new address
EMULATED_PROBE_MS = 30_000      # the emulated hypervisors' inactivity probe and bundle idle timeout


@dataclasses.dataclass
class HypervisorOVS:
    name: str
    rundir: Path
    run: Callable[[str], str]
    dpid: int
    vtep_cidr: str          # "192.168.50.1/24"
    mgmt_ip: str
    controller: str         # "tcp:169.254.77.1:6653" (or "ssl:...", then with `ssl` set)
    ssl: Credentials | None = None    # key, certificate, and the CA it trusts (the controller's)

    def sh(self, command: str) -> str:
        """Run `command` in the namespace with this hypervisor's OVS environment; raise on failure."""
        return self.checked(command, self.run(self.wrapped(command)))

    # A node's shell reads its commands through a pseudo-terminal, whose lines stop at 4,095
    # bytes: a longer one never reaches the shell whole and the node waits for ever (a
    # hypervisor with 16 VMs has a 4.7 KB start line). Longer commands go through a file.
    LINE_MAX = 3000

    def wrapped(self, command: str) -> str:
        """`command` as the shell line `sh` runs (for a caller that runs it itself, e.g. on
        many hypervisors at once); `checked` reads its output."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in ovs_env(self.rundir).items())
        if len(command) <= self.LINE_MAX:
            return f"env {env} sh -c {shlex.quote(command)} 2>&1; echo __rc=$?"
        self.rundir.mkdir(parents=True, exist_ok=True)
        script = self.rundir / f"command-{os.urandom(4).hex()}.sh"
        script.write_text(command + "\n")
        return f"env {env} sh {shlex.quote(str(script))} 2>&1; echo __rc=$?"

    def checked(self, command: str, output: str) -> str:
        body, _, rc = output.rpartition("__rc=")
        if rc.strip() != "0":
            raise HypervisorError(f"{self.name}: `{command}` failed: {body.strip()}")
        return body

    def vsctl(self, *args: str) -> str:
        return self.sh("ovs-vsctl --timeout=10 " + " ".join(args))

    # --- life cycle -------------------------------------------------------------------
    def start_daemons(self, *external_ids: str) -> None:
        """ovsdb-server (listening on the management IP too, if there is one) and ovs-vswitchd."""
        self.sh(self.database_script(external_ids))
        self.sh(self.switch_script(with_vtep=False))

    def database_script(self, external_ids=(), config: Sequence[str] = ()) -> str:
        """Shell: a fresh ovsdb-server, and in one ovs-vsctl transaction (no waiting for
        ovs-vswitchd) who this is plus `config`, ovs-vsctl arguments (`--` separated)."""
        d = self.rundir
        remote = f" --remote=ptcp:{OVSDB_PORT}:{self.mgmt_ip}" if self.mgmt_ip else ""
        ssl = []
        if self.ssl:     # OVSDB over SSL, only for a certificate of the CA in `ssl`; OpenFlow's SSL settings
            remote = (f" --remote=pssl:{OVSDB_PORT}:{self.mgmt_ip} --private-key={self.ssl.key}"
                      f" --certificate={self.ssl.cert} --ca-cert={self.ssl.ca}") if self.mgmt_ip else ""
            ssl = ["--", f"set-ssl {self.ssl.key} {self.ssl.cert} {self.ssl.ca}"]
        init = ["--no-wait init", "--", "set Open_vSwitch .", f"external_ids:system-id={self.name}",
                f"external_ids:hostname={self.name}", *external_ids, *ssl, *config]
        return (f"mkdir -p {d} && sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv6.conf.all.disable_ipv6=1"
                f" && ovsdb-tool create {d}/conf.db {SCHEMA}"
                f" && ovsdb-server {d}/conf.db --remote=punix:{d}/db.sock{remote}"
                f" --pidfile --log-file --detach --no-chdir -vconsole:err"
                f" && ovs-vsctl --timeout=10 {' '.join(init)}")

    def switch_script(self, with_vtep: bool = True) -> str:
        """Shell: ovs-vswitchd, which detaches once it has built what the database holds;
        then the uplink up and the VTEP (vtep_script)."""
        if not with_vtep:
            return "ovs-vswitchd --pidfile --log-file --detach --no-chdir -vconsole:err"
        return (f"ovs-vswitchd {VTEP_ROUTING} --pidfile --log-file --detach --no-chdir -vconsole:err"
                f" && ip addr flush dev {UPLINK} && ip link set {UPLINK} up && {self.vtep_script()}")

    def vtep_script(self) -> str:
        """Shell: the VTEP IP on br-phy's internal port, and OVS's route to the underlay
        through br-phy (VTEP_ROUTING says why OVS keeps its own). ovs/route/add takes the
        route's source address from br-phy as OVS last read it: tried until OVS has it."""
        net = ipaddress.ip_interface(self.vtep_cidr).network
        add = f"ovs-appctl ovs/route/add {net} br-phy >/dev/null"
        return (f"ip addr replace {self.vtep_cidr} dev br-phy && ip link set br-phy up"
                f" && for i in $(seq {ROUTE_TRIES}); do {add} && break; sleep 0.1; done && {add}")

    def hypervisor_config(self, ports: Sequence["VmPort"] = ()) -> list[str]:
        """ovs-vsctl arguments for the whole hypervisor but its controller: br-phy with the
        uplink, br-int, and the VM `ports` on br-int."""
        return ["--", "add-br br-phy", "--", "set bridge br-phy datapath_type=netdev",
                "other_config:disable-in-band=true", "--", f"add-port br-phy {UPLINK}", *self.br_int_config(ports)]

    def br_int_config(self, ports: Sequence["VmPort"] = ()) -> list[str]:
        config = ["--", "add-br br-int", "--", "set bridge br-int datapath_type=netdev fail_mode=secure",
                  "protocols=OpenFlow10,OpenFlow13", f"other_config:datapath-id={self.dpid:016x}",
                  "other_config:disable-in-band=true"]
        for p in ports:
            config += ["--", *p.vsctl_args()]
        return config

    # Hundreds of emulated hypervisors share this machine's cores with the controller: a
    # switch (or the controller) may go seconds without being scheduled. OVS's defaults (an
    # idle controller connection probed after 5 s and dropped 5 s later; a bundle whose next
    # message takes 10 s discarded) then drop a controller that is only slow. A hypervisor
    # with cores of its own keeps the defaults (the lab's).
    def emulated_script(self, ports: Sequence["VmPort"] = (), max_backoff_ms: int = 1000) -> str:
        """Shell for an emulated hypervisor (the scale bench): the same database, br-int and
        VM ports' external_ids as the lab's, under the controller from the start (retrying
        every `max_backoff_ms` while it is not there); but the VM ports are OVS dummy devices
        (ovs-vswitchd --enable-dummy=system makes every port of type "" one: no kernel
        device, no VM behind it) and there is no uplink (nothing crosses an underlay)."""
        vtep = f"external_ids:vtep-ip={self.vtep_cidr.split('/')[0]}"
        config = [*self.br_int_config(ports), *self.controllers_config(max_backoff_ms, EMULATED_PROBE_MS),
                  "--", f"set Open_vSwitch . other_config:bundle-idle-timeout={EMULATED_PROBE_MS // 1000}"]
        return (self.database_script([vtep], config)
                + " && ovs-vswitchd --enable-dummy=system --pidfile --log-file --detach --no-chdir -vconsole:err")

    def controllers_config(self, max_backoff_ms: int, probe_ms: int) -> list[str]:
        """ovs-vsctl arguments: br-int under every controller of `self.controller` (targets
        separated by spaces), each retried every `max_backoff_ms` while it is not there and
        probed after `probe_ms` idle (`set controller br-int ...` names a bridge's controller
        only when it has one)."""
        targets = self.controller.split()
        config = []
        for i, target in enumerate(targets):
            config += ["--", f"--id=@c{i} create controller target='\"{target}\"' max_backoff={max_backoff_ms} "
                             f"inactivity_probe={probe_ms}"]
        return config + ["--", f"set bridge br-int 'controller=[{','.join(f'@c{i}' for i in range(len(targets)))}]'"]

    def start_scripts(self, ports: Sequence["VmPort"] = ()) -> tuple[str, str]:
        """The hypervisor as two shell lines: everything but the controller (ovsdb-server
        with all of the configuration, bridges and VM ports, in one transaction; then
        ovs-vswitchd, which builds all of it before it detaches), which can run while the
        controller starts; then the controller, once it listens (a switch that finds no
        controller waits a second before it tries again)."""
        vtep = f"external_ids:vtep-ip={self.vtep_cidr.split('/')[0]}"
        ups = "".join(f"ip link set {p.port} up && " for p in ports)
        return (ups + self.database_script([vtep], self.hypervisor_config(ports)) + " && " + self.switch_script(),
                f"ovs-vsctl --timeout=10 --no-wait set-controller br-int {self.controller}")

    def start(self, ports: Sequence["VmPort"] = ()) -> None:
        """The hypervisor: daemons, br-phy with the VTEP, br-int under the controller, VM ports."""
        for script in self.start_scripts(ports):
            self.sh(script)

    def pids(self) -> dict[str, int]:
        found = {}
        for daemon in DAEMONS:
            try:
                found[daemon] = int((self.rundir / f"{daemon}.pid").read_text().strip())
            except (OSError, ValueError):
                pass
        return found

    def stop(self, timeout: float = 5.0) -> None:
        """Stop this hypervisor's daemons by the pids in their pidfiles."""
        for daemon, pid in reversed(list(self.pids().items())):
            stop_pid(pid, daemon, timeout)

    # --- VM ports ---------------------------------------------------------------------
    def attach_vm(self, port: str, vm: str, mac: str, switch: str, vni: int) -> None:
        """Plug a VM's port into br-int; its external_ids say which VM, MAC and logical switch."""
        self.sh(f"ip link set {port} up")
        self.vsctl(*VmPort(port, vm, mac, switch, vni).vsctl_args())

    def detach_vm(self, port: str) -> None:
        self.vsctl(f"--if-exists del-port br-int {port}")


@dataclasses.dataclass(frozen=True)
class VmPort:
    """A VM's port on br-int and what its external_ids say: which VM (iface-id), MAC and
    logical switch."""
    port: str
    vm: str
    mac: str
    switch: str
    vni: int

    def vsctl_args(self) -> list[str]:
        return [f"add-port br-int {self.port}", "--", f"set interface {self.port}",
                f"external_ids:vm-id={self.vm}", f"external_ids:attached-mac={self.mac}",
                f"external_ids:logical-switch={self.switch}", f"external_ids:vni={self.vni}",
                f"external_ids:iface-id={self.vm}"]


def stop_pid(pid: int, comm: str, timeout: float = 5.0, started: int | None = None) -> bool:
    """SIGTERM `pid` if it still is the process `comm` we started (and, if `started` is
    given, started at that clock tick: a reused pid is someone else's); wait; SIGKILL if it
    lingers. Returns True if a process was stopped."""
    if not _is(pid, comm, started):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    killed = False
    while _is(pid, comm, started):
        if time.monotonic() > deadline:
            if killed:
                raise HypervisorError(f"{comm} {pid} does not stop, even after SIGKILL")
            os.kill(pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + timeout
        time.sleep(0.02)
    return True


def stop_all(processes, timeout: float = 5.0) -> int:
    """stop_pid for many (pid, comm, start time) at once: every one told first, then all
    waited for together (SIGKILL for any that lingers). Returns how many were stopped."""
    mine = [(pid, comm, started) for pid, comm, started in processes if _is(pid, comm, started)]
    for pid, _, _ in mine:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    left = mine
    while left:
        left = [p for p in left if _is(*p)]
        if left and time.monotonic() > deadline:
            for pid, _, _ in left:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.02)
    return len(mine)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


def _is(pid: int, comm: str, started: int | None = None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    state = stat[stat.rindex(")") + 2]
    if started is not None and start_time(pid) != started:
        return False
    return state != "Z" and comm.startswith(name)    # comm is cut to 15 characters
