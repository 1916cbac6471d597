"""The Mininet CLI of `packetwalk lab`: Mininet's own commands (`vm1 ping vm3`, `net`, `dump`,
`hv1 ovs-ofctl dump-flows br-int`, `vm1 tcpdump -c 3 -i eth0`, ...) plus ours:

    mininet> walk vm1 vm3 [icmp|arp|udp:PORT|tcp:PORT]     the packet walk (packetwalk trace)
    mininet> flows hv1 [--table NAME] [--owner OBJ]         br-int annotated (packetwalk flows)

At a hypervisor, a command's words are passed as typed: Mininet replaces a node's name with
its IP, which would turn `hv1 ovs-vsctl get interface vm1 ofport` into nonsense.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from mininet.cli import CLI
from mininet.log import error, output

from mininet_topos.lab import LAB_FILE
from mininet_topos.nodes import HypervisorNode

OURS = """
packetwalk commands:
  walk SRC DST [PROTO]                  walk a packet from VM SRC to VM DST through the real flows
                                        (PROTO: icmp, arp, udp:PORT, tcp:PORT; default icmp)
  flows HV [--table NAME] [--owner OBJ] HV's br-int table by table, each flow with its owner
  HV ovs-ofctl dump-flows br-int        the flow tables, with their names (table="l2_lookup")
  HV ovs-appctl ofproto/trace br-int FLOW  OVS's own trace of a packet
  VM tcpdump -c 3 -i eth0               capture at a VM (no xterm needed)
"""


def run(net, rundir: Path) -> None:
    """The CLI on a terminal; fed commands on stdin (`packetwalk lab < session.txt`), it runs
    them in order and returns at their end. (Mininet's CLI reads keys from stdin while a command
    runs, to pass them on: piped, that would eat the next commands.)"""
    if sys.stdin.isatty():
        PacketwalkCLI(net, rundir)
        return
    never = os.pipe()
    try:
        with open(never[0]) as stdin:
            PacketwalkCLI(net, rundir, stdin=stdin, script=f"/dev/fd/{sys.stdin.fileno()}")
    finally:
        os.close(never[1])


class PacketwalkCLI(CLI):
    def __init__(self, mininet, rundir: Path, **kwargs):
        self.rundir = Path(rundir)          # before CLI.__init__, which runs the command loop
        super().__init__(mininet, **kwargs)

    def do_help(self, line):
        """Describe the commands: Mininet's, then packetwalk's."""
        super().do_help(line)
        if line == "":
            output(OURS)

    def do_walk(self, line):
        """Walk a packet through the lab's real flows: walk SRC DST [icmp|arp|udp:PORT|tcp:PORT]"""
        from packetwalk.trace import RunningLab, WalkError, walk
        args = line.split()
        if len(args) not in (2, 3):
            error("usage: walk SRC DST [icmp|arp|udp:PORT|tcp:PORT]\n")
            return
        try:
            output(walk(RunningLab(self.rundir), *args).text() + "\n")
        except Exception as e:        # noqa: BLE001  a bad name or a failed trace: say so, keep the CLI
            error(f"walk: {e}\n")

    def do_flows(self, line):
        """A hypervisor's br-int, each flow with its table's purpose and owner:
        flows HV [--table NAME] [--owner OBJ]"""
        from packetwalk import flows
        from packetwalk.show import ShowError, api_url, get
        args = shlex.split(line)
        options = dict(zip(args[1::2], args[2::2]))
        if len(args) % 2 != 1 or not set(options) <= {"--table", "--owner"}:
            error("usage: flows HV [--table NAME] [--owner OBJ]\n")
            return
        hv = args[0]
        try:
            flows.select([], table=options.get("--table"))
            owned = get(api_url(self._lab_api()), f"/v1/hypervisors/{hv}/flows")["flows"]
            rows = flows.annotate(flows.dump_flows(self.rundir, hv), owned)
            output(flows.text(hv, flows.select(rows, options.get("--table"), options.get("--owner"))) + "\n")
        except (flows.FlowsError, ShowError) as e:
            error(f"flows: {e}\n")

    def _lab_api(self) -> str | None:
        try:
            return json.loads((self.rundir / LAB_FILE).read_text()).get("api")
        except (OSError, ValueError):
            return None

    def default(self, line):
        first, args, _ = self.parseline(line)
        node = self.mn[first] if first in self.mn else None
        if isinstance(node, HypervisorNode) and args:
            node.sendCmd(args)
            self.waitForNode(node)
        else:
            super().default(line)
