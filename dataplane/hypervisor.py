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
import os
import shlex
import signal
import time
from pathlib import Path
from typing import Callable

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
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in ovs_env(self.rundir).items())
        out = self.run(f"env {env} {command} 2>&1; echo __rc=$?")
        body, _, rc = out.rpartition("__rc=")
        if rc.strip() != "0":
            raise HypervisorError(f"{self.name}: `{command}` failed: {body.strip()}")
        return body

    def vsctl(self, *args: str) -> str:
        return self.sh("ovs-vsctl --timeout=10 " + " ".join(args))

    # --- life cycle -------------------------------------------------------------------
    def start_daemons(self, *external_ids: str) -> None:
        """ovsdb-server (listening on the management IP too, if there is one: over SSL,
        accepting only clients with a certificate from the CA in `ssl`, when it is set)
        and ovs-vswitchd."""
        self.rundir.mkdir(parents=True, exist_ok=True)
        d = self.rundir
        self.sh("sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv6.conf.all.disable_ipv6=1")
        self.sh(f"ovsdb-tool create {d}/conf.db {SCHEMA}")
        remote = ""
        if self.mgmt_ip and self.ssl:
            remote = (f" --remote=pssl:{OVSDB_PORT}:{self.mgmt_ip} --private-key={self.ssl.key}"
                      f" --certificate={self.ssl.cert} --ca-cert={self.ssl.ca}")
        elif self.mgmt_ip:
            remote = f" --remote=ptcp:{OVSDB_PORT}:{self.mgmt_ip}"
        self.sh(f"ovsdb-server {d}/conf.db --remote=punix:{d}/db.sock{remote} "
                f"--pidfile --log-file --detach --no-chdir")
        self.vsctl("--no-wait init", "--", "set Open_vSwitch .", f"external_ids:system-id={self.name}",
                   f"external_ids:hostname={self.name}", *external_ids)
        if self.ssl:     # ovs-vswitchd's own SSL settings: for its OpenFlow connection
            self.vsctl("--no-wait set-ssl", str(self.ssl.key), str(self.ssl.cert), str(self.ssl.ca))
        self.sh("ovs-vswitchd --pidfile --log-file --detach --no-chdir")

    def start(self) -> None:
        """The hypervisor: daemons, then br-phy with the VTEP, then br-int under the controller."""
        self.start_daemons(f"external_ids:vtep-ip={self.vtep_cidr.split('/')[0]}")
        self.vsctl("add-br br-phy", "--", "set bridge br-phy datapath_type=netdev",
                   "other_config:disable-in-band=true", "--", f"add-port br-phy {UPLINK}")
        self.sh(f"ip addr flush dev {UPLINK}")
        self.sh(f"ip link set {UPLINK} up")
        self.sh(f"ip addr add {self.vtep_cidr} dev br-phy")
        self.sh("ip link set br-phy up")
        self.vsctl("add-br br-int", "--", "set bridge br-int datapath_type=netdev fail_mode=secure",
                   "protocols=OpenFlow10,OpenFlow13", f"other_config:datapath-id={self.dpid:016x}",
                   "other_config:disable-in-band=true", "--", f"set-controller br-int {self.controller}")

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
        self.vsctl(f"add-port br-int {port}", "--", f"set interface {port}",
                   f"external_ids:vm-id={vm}", f"external_ids:attached-mac={mac}",
                   f"external_ids:logical-switch={switch}", f"external_ids:vni={vni}",
                   f"external_ids:iface-id={vm}")

    def unbind_vm(self, port: str) -> None:
        """The port stays on br-int but names no logical port any more (a VM about to leave)."""
        self.vsctl(f"remove interface {port} external_ids iface-id")

    def detach_vm(self, port: str) -> None:
        self.vsctl(f"--if-exists del-port br-int {port}")


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
