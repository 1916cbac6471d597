"""A fleet of emulated hypervisors for the scale bench: hundreds on one machine, each
speaking real OpenFlow 1.3 and OVSDB to the controller, as a lab hypervisor does.

Each member is one ovsdb-server + ovs-vswitchd pair in its own network namespace pw-sN,
reached on its management interface vmk0 through the bridge pw-smg (the controller's
address is on it). Why this shape and not the others:
- several bridges in one ovs-vswitchd would share one database (one system-id, one VTEP
  IP) and one management address: to the controller they would be one hypervisor;
- a namespace per member gives each its own address, so the controller finds its OVSDB
  where its OpenFlow connection comes from, exactly as in the lab;
- VM ports are OVS dummy devices on the real userspace datapath (ovs-vswitchd
  --enable-dummy=system: a port of type "" is a dummy): the database, br-int and the ports'
  external_ids are the lab's, the flows land in the real ofproto, and 5,000 VMs cost no
  kernel device, no Mininet host and no shell. About 25 MB and 0.2% of a core per member.

What the members hold is read back without the controller (dataplane/ofprobe.py).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shlex
import subprocess
from pathlib import Path

from dataplane.ofprobe import BrIntProbe
from dataplane.hypervisor import (OPENFLOW_PORT, HypervisorError, HypervisorOVS, VmPort, ovs_env,
                                  start_time, stop_all)

PREFIX = "pw-s"                  # the members' namespaces: pw-s1, pw-s2, ...
BRIDGE = "pw-smg"                # their management network


@dataclasses.dataclass(frozen=True)
class Member:
    name: str                    # its system-id
    mgmt_ip: str
    vtep_ip: str
    ports: tuple[VmPort, ...]


class Fleet:
    def __init__(self, rundir: Path, members: list[Member], controller_ip: str | tuple[str, ...], prefixlen: int = 24,
                 progress=None, workers: int = 4):
        """`controller_ip`: the controller's address, or several controllers' (each member
        then has every one as a target); each is put on the management bridge."""
        self.rundir = Path(rundir)
        self.members = {m.name: m for m in members}
        self.controller_ips = (controller_ip,) if isinstance(controller_ip, str) else tuple(controller_ip)
        self.controller_ip, self.prefixlen = self.controller_ips[0], prefixlen
        self.progress = progress or (lambda msg: None)
        self.workers = workers
        self.pids: list[tuple[int, str, int | None]] = []     # what we started: (pid, comm, start time)
        self.namespaces: dict[str, str] = {}                   # member -> its namespace
        self.probe = BrIntProbe()

    def ovs(self, name: str) -> HypervisorOVS:
        m, i = self.members[name], list(self.members).index(name) + 1
        return HypervisorOVS(name, self.rundir / name, None, i, f"{m.vtep_ip}/24", m.mgmt_ip,
                             " ".join(f"tcp:{ip}:{OPENFLOW_PORT}" for ip in self.controller_ips))

    # --- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Namespaces and the management bridge (one `ip -batch`), then every member's OVS,
        `workers` at a time. On any failure everything started so far is stopped."""
        try:
            self._network()
            done = 0
            with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
                for name in pool.map(self._start_member, self.members):
                    done += 1
                    if done % 25 == 0 or done == len(self.members):
                        self.progress(f"emulated hypervisors up: {done}/{len(self.members)}")
        except BaseException:
            self.stop()
            raise

    def _network(self) -> None:
        lines = [f"link add {BRIDGE} type bridge nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0",
                 *(f"addr add {ip}/{self.prefixlen} dev {BRIDGE}" for ip in self.controller_ips),
                 f"link set {BRIDGE} up"]
        for i, name in enumerate(self.members, start=1):
            ns = self.namespaces[name] = f"{PREFIX}{i}"
            lines += [f"netns add {ns}", f"link add {PREFIX}m{i} type veth peer name vmk0 netns {ns}",  # pw-smN
                      f"link set {PREFIX}m{i} master {BRIDGE} up"]
        _ip_batch(lines)

    def _start_member(self, name: str) -> str:
        m, ovs = self.members[name], self.ovs(name)
        script = (f"ip link set lo up && ip addr add {m.mgmt_ip}/{self.prefixlen} dev vmk0 && ip link set vmk0 up"
                  f" && {ovs.emulated_script(m.ports)}")
        r = subprocess.run(["ip", "netns", "exec", self.namespaces[name], "sh", "-c", script],
                           capture_output=True, text=True, env={**os.environ, **ovs_env(ovs.rundir)})
        for daemon, pid in ovs.pids().items():
            self.pids.append((pid, daemon, start_time(pid)))
        if r.returncode:
            raise HypervisorError(f"emulated hypervisor {name}: {(r.stderr or r.stdout).strip()}")
        return name

    def stop(self) -> None:
        """Every daemon we started, by pid (all told at once, then waited for); then our
        namespaces and bridge."""
        self.probe.close()
        stop_all(self.pids)
        self.pids = []
        lines = [f"link del {ns.replace(PREFIX, PREFIX + 'm')}" for ns in self.namespaces.values()]
        lines += [f"netns del {ns}" for ns in self.namespaces.values()]
        self.namespaces = {}
        _ip_batch(lines + [f"link del {BRIDGE}"], check=False)

    # --- reading the members ---------------------------------------------------------------
    def vsctl(self, name: str, *args: str) -> str:
        """ovs-vsctl on a member (through its database's socket: no namespace needed); `args`
        as HypervisorOVS.vsctl takes them (shell words)."""
        r = subprocess.run(["ovs-vsctl", "--timeout=10", *shlex.split(" ".join(args))], capture_output=True, text=True,
                           env={**os.environ, **ovs_env(self.rundir / name)})
        if r.returncode:
            raise HypervisorError(f"{name}: ovs-vsctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def observe(self, names, probe: BrIntProbe | None = None) -> dict[str, tuple[int, int]]:
        """member -> (our flows on its br-int, its tunnel ports), read from the switches
        (through `probe`, a thread's own, else the fleet's)."""
        return (probe or self.probe).observe(self._sockets(names))

    def cookies(self, names, probe: BrIntProbe | None = None) -> dict[str, set[int]]:
        """member -> the cookies of our flows on its br-int."""
        return (probe or self.probe).cookies(self._sockets(names))

    def _sockets(self, names) -> dict[str, Path]:
        return {n: self.rundir / n / "br-int.mgmt" for n in names}


def _ip_batch(lines: list[str], check: bool = True) -> None:
    """One `ip` for many commands; `check`: stop at the first failure and raise (else go on)."""
    cmd = ["ip", "-batch", "-"] if check else ["ip", "-force", "-batch", "-"]
    r = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if check and r.returncode:
        raise HypervisorError(f"ip -batch: {r.stderr.strip()}")

