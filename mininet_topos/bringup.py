"""Bringing many Mininet nodes up at once: the lab's building blocks for a start that does
not grow one command at a time.

    run_on([(node, "cmd"), ...])   every node's shell runs its command at the same time
    add_hosts(net, hosts)          Mininet hosts, their shells started several at a time
    add_links(net, links)          every veth pair in one `ip -batch`, then known to Mininet
    ip_batch(lines, what)          many `ip` commands in one process
"""
from __future__ import annotations

import concurrent.futures
import subprocess

from mininet_topos.nodes import PrecreatedLink

HOST_WORKERS = 8         # Mininet hosts started at once (each waits on its shell's prompt)


class BringupError(RuntimeError):
    pass


def run_on(commands: list[tuple]) -> list[str]:
    """Run each (Mininet node, shell command) pair, all at once; their outputs, in order."""
    for node, command in commands:
        node.sendCmd(command)
    return [node.waitOutput() for node, _ in commands]


def add_hosts(net, hosts: list[tuple[str, dict]], workers: int = HOST_WORKERS) -> None:
    """(name, addHost's keyword arguments) each: their shells started `workers` at a time;
    net.hosts keeps the given order."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda h: net.addHost(h[0], **h[1]), hosts))
    order = {name: i for i, (name, _) in enumerate(hosts)}
    net.hosts.sort(key=lambda h: order.get(h.name, len(order)))


def add_links(net, links: list[tuple[str, str, str, str]]) -> None:
    """(node, its interface, peer node, the peer's interface) each: every veth pair made in
    one `ip -batch`, each end straight in its node's namespace; then known to Mininet, down
    (the nodes' own setup commands bring their ends up)."""
    where = {n.name: f" netns {n.pid}" if n.inNamespace else "" for n in net.hosts + net.switches}
    ip_batch([f"link add name {i1}{where[n1]} type veth peer name {i2}{where[n2]}" for n1, i1, n2, i2 in links],
             "the lab's links")
    for n1, i1, n2, i2 in links:
        net.addLink(net[n1], net[n2], intfName1=i1, intfName2=i2, cls=PrecreatedLink,
                    params1={"up": None}, params2={"up": None})


def ip_batch(lines: list[str], what: str) -> None:
    r = subprocess.run(["ip", "-batch", "-"], input="".join(line + "\n" for line in lines),
                       capture_output=True, text=True)
    if r.returncode:
        raise BringupError(f"cannot make {what}: {r.stderr.strip()}")
