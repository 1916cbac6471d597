"""throughput: iperf3 TCP between VMs on different hypervisors, switched (one logical switch)
and routed (the distributed router), with the CPU the two ovs-vswitchd processes used; and
the same between two namespaces joined by a plain veth pair on this machine: the ceiling."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time

from mininet_topos import checks
from mininet_topos.lab import wait_for
from mininet_topos.nodes import VM_MTU
from packetwalk.bench import figure, labs, ratio

REFERENCE = "reference OVN 23.03 lab"
OVN_GBITS = (1.2, 1.5)              # iperf3 on a quiet machine
PORT = 5201
SERVER = ["iperf3", "-s", "-1", "-p", str(PORT)]          # serves one connection, then exits
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK          # utime + stime


def iperf(server_cmd, client_cmd, server_ip: str, seconds: int) -> dict:
    """iperf3 server (one connection, then it exits) and client; the client's JSON summary.
    `server_cmd` starts SERVER and returns (wait for it, interrupt it); `client_cmd` runs a
    shell command and returns its output."""
    done, interrupt = server_cmd()
    try:
        out = wait_for(lambda: _client(client_cmd, server_ip, seconds), 10, "the iperf3 server to answer")
    except BaseException:
        interrupt()                      # it never had its one connection
        raise
    finally:
        done()
    end = json.loads(out)["end"]
    return {"gbits": round(end["sum_received"]["bits_per_second"] / 1e9, 3),
            "retransmits": end["sum_sent"].get("retransmits")}


def _client(client_cmd, server_ip: str, seconds: int) -> str | None:
    out = client_cmd(f"iperf3 -c {server_ip} -p {PORT} -t {seconds} -J 2>/dev/null")
    try:
        data = json.loads(out)
    except ValueError:
        return None
    return None if data.get("error") else out      # "unable to connect": not listening yet, try again


def between_vms(lab, src, dst, seconds: int) -> dict:
    vswitchd = [lab.hv(h.name).ovs.pids()["ovs-vswitchd"] for h in lab.topo.hypervisors]
    before, t0 = sum(_cpu_seconds(p) for p in vswitchd), time.monotonic()
    server, client = lab.vm(dst.name), lab.vm(src.name)

    def start_server():
        server.sendCmd(" ".join(SERVER))
        return server.waitOutput, server.sendInt
    r = iperf(start_server, client.cmd, str(dst.ip), seconds)
    r["vswitchd_cpu_pct"] = round(100 * (sum(_cpu_seconds(p) for p in vswitchd) - before) / (time.monotonic() - t0))
    return r


@contextlib.contextmanager
def veth_pair():
    """Two namespaces, pw-bench-a (10.99.0.1) and pw-bench-b (10.99.0.2), a veth pair between
    them, the VMs' MTU and checksum settings; removed at the end."""
    names = ("pw-bench-a", "pw-bench-b")
    run = lambda *c: subprocess.run(c, check=True, capture_output=True)
    try:
        for n in names:
            run("ip", "netns", "add", n)
        run("ip", "link", "add", "eth0", "netns", names[0], "type", "veth", "peer", "name", "eth0", "netns", names[1])
        for i, n in enumerate(names, start=1):
            run("ip", "-n", n, "addr", "add", f"10.99.0.{i}/24", "dev", "eth0")
            run("ip", "-n", n, "link", "set", "eth0", "mtu", str(VM_MTU), "up")
            run("ip", "netns", "exec", n, "ethtool", "-K", "eth0", "tx", "off")
        yield names
    finally:
        for n in names:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def ceiling(seconds: int) -> dict:
    with veth_pair() as (a, b):
        def start_server():
            proc = subprocess.Popen(["ip", "netns", "exec", b, *SERVER],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            return proc.wait, proc.terminate
        client = lambda cmd: subprocess.run(["ip", "netns", "exec", a, "sh", "-c", cmd],
                                            capture_output=True, text=True).stdout
        return iperf(start_server, client, "10.99.0.2", seconds)


def run(quick: bool, progress) -> dict:
    seconds = 1 if quick else 10
    progress(f"veth pair between two namespaces: iperf3 {seconds} s (the ceiling)")
    top = ceiling(seconds)
    figs = {"veth_ceiling": figure(top["gbits"], "Gbit/s", note="two namespaces, a plain veth pair, MTU 1450")}
    with labs.lab(labs.grid(2, 2), progress) as lab:
        pairs = {"switched": checks._pair_across_hypervisors(lab), "routed": checks.routed_pairs(lab)["cross_host"]}
        for kind, (a, b) in pairs.items():
            progress(f"{kind}: iperf3 {a.name} -> {b.name} across hypervisors, {seconds} s")
            r = between_vms(lab, a, b, seconds)
            figs[f"tcp_{kind}"] = figure(r["gbits"], "Gbit/s", baseline=OVN_GBITS[0], baseline_of=REFERENCE,
                                         note=f"{r['retransmits']} retransmits; reference {OVN_GBITS[0]}-"
                                              f"{OVN_GBITS[1]} Gbit/s on a quiet machine")
            figs[f"vswitchd_cpu_{kind}"] = figure(r["vswitchd_cpu_pct"], "%",
                                                  note="both hypervisors' ovs-vswitchd, % of one core")
            figs[f"of_ceiling_{kind}"] = figure(round(100 * ratio(r["gbits"], top["gbits"])), "%",
                                                note="share of the veth ceiling")
    return figs
