"""The controller's database as an N-member Raft cluster in the lab (`packetwalk lab --nb-cluster N`).

Each member is a Mininet host in its own namespace (pw-nbdbN) on the management network:
`ovsdb-tool create-cluster` on the first, `join-cluster` on the others, one `ovsdb-server`
each. With the lab's PKI (`--ssl`) the members talk Raft to each other over SSL and serve
clients only over SSL: each presents its certificate from the database CA and accepts a peer
(database CA) or a controller (controller CA); a hypervisor's certificate, a stranger's or
none is refused. The lab's own reads and writes (checks, tests) go through `transact()` and `select()`, with
the controller's certificate, as any operator's `ovsdb-client` would.
"""
from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from pathlib import Path

from dataplane.pki import LabPKI

NB_PORT, NB_RAFT_PORT = 6641, 6643     # the database's clients and its Raft peers
DB_NAME = "Packetwalk"       # controller/nbdb.py's (not imported here: python-ovs comes with it)
ELECTION_TIMER_MS = 500     # a dead leader is replaced after 0.5 s of silence (OVSDB's default is 1 s)


class NbClusterError(RuntimeError):
    """A member did not start, or a client call failed; str() names the member."""


class NbCluster:
    def __init__(self, size: int, management: ipaddress.IPv4Network, rundir: Path, pki: LabPKI | None = None):
        self.size = size
        self.management = management
        self.rundir = Path(rundir)
        self.pki = pki
        self.net = None

    # --- names and addresses ----------------------------------------------------------------
    @property
    def members(self) -> list[str]:
        return [self.member(i) for i in range(1, self.size + 1)]

    def member(self, i: int) -> str:
        return f"nbdb{i}"

    def ip(self, i: int) -> str:
        return str(self.management.broadcast_address - 10 - i)

    @property
    def scheme(self) -> str:
        return "ssl" if self.pki else "tcp"

    def target(self, i: int, port: int = NB_PORT) -> str:
        return f"{self.scheme}:{self.ip(i)}:{port}"

    @property
    def remote(self) -> str:
        """What a controller is given as --nb."""
        return ",".join(self.target(i) for i in range(1, self.size + 1))

    def ctl(self, i: int) -> str:
        return str(self.dir(i) / "ovsdb-server.ctl")

    def dir(self, i: int) -> Path:
        return self.rundir / self.member(i)

    def controller_args(self) -> list[str]:
        """A controller's options for this database (its key and certificate are the
        OpenFlow ones, --ctl-privkey/--ctl-cert, given with those)."""
        return ["--nb", self.remote] + (["--nb-ca-certs", str(self.pki.database_ca)] if self.pki else [])

    # --- life cycle -------------------------------------------------------------------------
    def add_hosts(self, net, bridge) -> None:
        """Each member a host of `net` on the management bridge (before the net starts)."""
        self.net = net
        for i in range(1, self.size + 1):
            node = net.addHost(self.member(i), ip=None)
            net.addLink(node, bridge, intfName1="eth0", intfName2=f"{bridge.name}-{node.name}",
                        params1={"ip": f"{self.ip(i)}/{self.management.prefixlen}"})

    def start(self, manifest, wait_for) -> None:
        """create-cluster on the first member, join-cluster on the others, a server each;
        then the shorter election timer, once there is a leader."""
        from controller.nbdb import SCHEMA
        first = self.target(1, NB_RAFT_PORT)
        for i in range(1, self.size + 1):
            d = self.dir(i)
            d.mkdir(parents=True, exist_ok=True)
            me = self.target(i, NB_RAFT_PORT)
            tool = ["ovsdb-tool", "create-cluster", f"{d}/nb.db", str(SCHEMA), me] if i == 1 else \
                ["ovsdb-tool", "join-cluster", f"{d}/nb.db", DB_NAME, me, first]
            r = subprocess.run(tool, capture_output=True, text=True)
            if r.returncode:
                raise NbClusterError(f"database member {self.member(i)}: {' '.join(tool[:2])}: {r.stderr.strip()}")
            self.start_member(i, manifest)
        leader = wait_for(self.leader, 10, "the database cluster to elect a leader")
        subprocess.run(["ovs-appctl", "-t", self.ctl(leader), "cluster/change-election-timer", DB_NAME,
                        str(ELECTION_TIMER_MS)], capture_output=True)

    def start_member(self, i: int, manifest) -> None:
        d, node = self.dir(i), self.net[self.member(i)]
        tls = ""
        if self.pki:        # SSL for clients and for the Raft peers (create/join-cluster's ssl: addresses)
            own = self.pki.database[self.member(i)]
            tls = f" --private-key={own.key} --certificate={own.cert} --ca-cert={own.ca}"
        listen = f"p{self.scheme}:{NB_PORT}:{self.ip(i)}"
        out = node.cmd(f"ovsdb-server {d}/nb.db --remote={listen}{tls} --pidfile={d}/ovsdb-server.pid "
                       f"--unixctl={self.ctl(i)} --log-file={d}/ovsdb-server.log --detach --no-chdir; echo rc=$?")
        if "rc=0" not in out:
            raise NbClusterError(f"database member {self.member(i)} did not start: {out.strip()}")
        manifest.add_pid(int((d / "ovsdb-server.pid").read_text()), "ovsdb-server")

    def pid(self, i: int) -> int | None:
        try:
            return int((self.dir(i) / "ovsdb-server.pid").read_text())
        except (OSError, ValueError):
            return None

    def leader(self) -> int | None:
        """The member that is the Raft leader now, as the members themselves say."""
        for i in range(1, self.size + 1):
            out = subprocess.run(["ovs-appctl", "-t", self.ctl(i), "cluster/status", DB_NAME],
                                 capture_output=True, text=True).stdout
            if re.search(r"^Role: leader", out, re.M):
                return i
        return None

    # --- a client of one member, not through a controller ---------------------------------------
    def client_options(self) -> list[str]:
        """`ovsdb-client`'s options for a member (with the PKI: the controller's key and
        certificate, and the database CA)."""
        tls = []
        if self.pki:
            c = self.pki.database_client
            tls = [f"--private-key={c.key}", f"--certificate={c.cert}", f"--ca-cert={c.ca}"]
        return ["--timeout=10", *tls]

    def transact(self, i: int, operations: list) -> list:
        """One transaction on member i (`ovsdb-client transact`): its results."""
        r = subprocess.run(["ovsdb-client", *self.client_options(), "transact", self.target(i),
                            json.dumps([DB_NAME, *operations])], capture_output=True, text=True, timeout=15)
        if r.returncode:
            raise NbClusterError(f"database member {self.member(i)}: transact: {r.stderr.strip()[-200:]}")
        return json.loads(r.stdout)

    def select(self, i: int, table: str, columns: list[str], where: list | None = None) -> list[dict]:
        """Rows of `table` as member i holds them."""
        op = {"op": "select", "table": table, "where": where or [], "columns": columns}
        return self.transact(i, [op])[0]["rows"]
