"""The `tls` check: every channel the controller talks on is encrypted, and a party without
the right certificate is refused (`packetwalk lab --ssl --test tls`): OpenFlow, every
hypervisor's OVSDB and, with `--nb-cluster N`, the controller's database (its clients'
port and the members' Raft port)."""
from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import subprocess

from dataplane.hypervisor import OPENFLOW_PORT, OVSDB_PORT
from dataplane.pki import Credentials, stranger
from mininet_topos.checks import check
from mininet_topos.nbcluster import NB_PORT, NB_RAFT_PORT

OFPT_HELLO_13 = struct.pack("!BBHI", 4, 0, 8, 1)
LIST_DBS = json.dumps({"method": "list_dbs", "params": [], "id": 0}).encode()
# The first byte of a TCP segment's payload (tcpdump's BPF arithmetic for the data offset).
FIRST_BYTE = "tcp[((tcp[12:1] & 0xf0) >> 2):1]"
HAS_DATA = "(ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12:1] & 0xf0) >> 2)) > 0"
# Cleartext would start with an OpenFlow 1.3 header (version 4) or a JSON-RPC object ("{").
CLEARTEXT = f"({FIRST_BYTE} = 0x04 or {FIRST_BYTE} = 0x7b)"


def channel(ports) -> str:
    """tcpdump's filter for segments with data on these TCP ports."""
    return f"({' or '.join(f'tcp port {p}' for p in ports)}) and {HAS_DATA}"


def _tls_socket(raw: socket.socket, creds: Credentials | None) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE      # we test the server's checks, not ours
    if creds:
        ctx.load_cert_chain(creds.cert, creds.key)
    return ctx.wrap_socket(raw)


def openflow_hello(host: str, creds: Credentials | None, tls: bool = True) -> str:
    """Connect to the controller's OpenFlow port as a switch would, say HELLO, and tell what
    came back: "hello" (accepted), or why not."""
    try:
        with socket.create_connection((host, OPENFLOW_PORT), timeout=3) as raw:
            sock = _tls_socket(raw, creds) if tls else raw
            sock.sendall(OFPT_HELLO_13)
            reply = sock.recv(8)
    except (OSError, ssl.SSLError) as e:
        return f"refused ({type(e).__name__}: {e})"[:160]
    if len(reply) >= 2 and reply[0] == 4 and reply[1] == 0:
        return "hello"
    return f"refused (answer: {reply[:8].hex() or 'connection closed'})"


def jsonrpc_list_dbs(host: str, port: int, creds: Credentials | None) -> str:
    """Ask an OVSDB server (or a Raft peer's port) for its databases over TLS, presenting
    `creds` or no certificate at all: the answer, or why not."""
    try:
        with socket.create_connection((host, port), timeout=3) as raw, _tls_socket(raw, creds) as sock:
            sock.sendall(LIST_DBS)
            reply = sock.recv(4096)
    except (OSError, ssl.SSLError) as e:
        return f"refused ({type(e).__name__}: {e})"[:160]
    return f"answered: {reply[:80].decode(errors='replace')}" if reply else "refused (connection closed)"


def ovsdb_list_dbs(target: str, creds: Credentials | None, ca: str | None) -> str:
    """`ovsdb-client list-dbs` against an OVSDB server: its databases, or why not."""
    args = ["ovsdb-client", "--timeout=5"]
    if creds:
        args += [f"--private-key={creds.key}", f"--certificate={creds.cert}", f"--ca-cert={ca}"]
    r = subprocess.run(args + ["list-dbs", target], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else f"refused ({r.stderr.strip()[-120:]})"


def _traffic(lab) -> None:
    """Make the controller talk on every channel: a packet-in and its packet-out (an ARP for
    an unbound address), an OVSDB update on every hypervisor, and with the database as a
    cluster a write through the API (the controller's transaction, the members' Raft log)."""
    vm = lab.topo.vms[0]
    lab.vm(vm.name).cmd("arping -q -c 2 -w 1 -I eth0 " + str(lab.topo.switch(vm.switch).subnet[-2]))
    for hv in lab.topo.hypervisors:
        lab.hv(hv.name).ovs.vsctl("set Open_vSwitch . external_ids:pw-tls-check=1")
    if lab.nb:
        from mininet_topos.checks_intent import _api, _free_vni
        _api(lab, "POST", "/v1/logical-switches", {"name": "tlscheck", "vni": _free_vni(lab, 7900),
                                                   "subnet": "10.198.0.0/24"})
        _api(lab, "DELETE", "/v1/logical-switches/tlscheck")


def _database(lab, outsider: Credentials) -> tuple[dict, dict]:
    """The database's answers to a client with the controller's certificate (control) and
    to intruders, on its clients' port and its Raft port; where its members listen."""
    nb, pki = lab.nb, lab.pki
    i = nb.leader() or 1
    ip, hv1 = nb.ip(i), lab.topo.hypervisors[0].name
    client = pki.database_client
    answers = {
        "database: the controller's certificate (control)": ovsdb_list_dbs(nb.target(i), client, str(client.ca)),
        "database: plain TCP": ovsdb_list_dbs(f"tcp:{ip}:{NB_PORT}", None, None),
        "database: no certificate": jsonrpc_list_dbs(ip, NB_PORT, None),
        "database: a stranger's certificate": ovsdb_list_dbs(nb.target(i), outsider, str(client.ca)),
        f"database: {hv1}'s certificate": ovsdb_list_dbs(nb.target(i), pki.hypervisors[hv1], str(client.ca)),
        "database raft port: no certificate": jsonrpc_list_dbs(ip, NB_RAFT_PORT, None),
        "database raft port: a stranger's certificate": jsonrpc_list_dbs(ip, NB_RAFT_PORT, outsider),
    }
    listens = {}
    for m in range(1, nb.size + 1):
        remotes = subprocess.run(["ovs-appctl", "-t", nb.ctl(m), "ovsdb-server/list-remotes"],
                                 capture_output=True, text=True).stdout.split()
        status = subprocess.run(["ovs-appctl", "-t", nb.ctl(m), "cluster/status", "Packetwalk"],
                                capture_output=True, text=True).stdout
        raft = next((line.split(": ", 1)[1] for line in status.splitlines() if line.startswith("Address: ")), None)
        listens[nb.member(m)] = {"clients": remotes, "raft": raft}
    return answers, listens


def _openflow_host(lab) -> str:
    """Where a controller serves OpenFlow: the one in the root namespace, or a live one."""
    live = [c for c in lab.controllers if lab.controller_alive(c)]
    return lab.controller_ip(live[0]) if live else str(lab.topo.controller_ip)


@check("tls")
def tls(lab) -> dict:
    """OpenFlow, every hypervisor's OVSDB and the controller's database (with --nb-cluster)
    are TLS on the wire (0 cleartext segments on the management network while the controller
    talks on each), and each refuses a party without the right certificate: plain TCP, no
    certificate, a stranger's, another hypervisor's (a hypervisor's, for the database)."""
    from mininet_topos.capture import Capture
    channels = {"openflow+ovsdb": [OPENFLOW_PORT, OVSDB_PORT]}
    if lab.nb:
        channels["database"] = [NB_PORT, NB_RAFT_PORT]
    with contextlib.ExitStack() as stack:
        # every interface of this namespace: the management bridge's ports too (namespaced
        # controllers and database members talk port to port, past the bridge's own device)
        seen = {k: stack.enter_context(Capture(channel(ports), interface="any")) for k, ports in channels.items()}
        clear = {k: stack.enter_context(Capture(f"{channel(ports)} and {CLEARTEXT}", interface="any"))
                 for k, ports in channels.items()}
        _traffic(lab)
    figures = {"segments_seen": {k: c.count for k, c in seen.items()},
               "cleartext_segments": {k: c.count for k, c in clear.items()}}
    if not lab.pki:
        return {"ok": False, "why": "the lab runs without --ssl: every channel is plain TCP", **figures}
    ctl, hvs = _openflow_host(lab), lab.topo.hypervisors
    own, outsider = lab.pki.controller, stranger(lab.rundir / "pki" / "stranger")
    hv1, hv2 = hvs[0], hvs[-1]
    ovsdb = f"ssl:{hv1.mgmt_ip}:{OVSDB_PORT}"
    answers = {
        "openflow: hypervisor's certificate (control)": openflow_hello(ctl, lab.pki.hypervisors[hv1.name]),
        "openflow: plain TCP": openflow_hello(ctl, None, tls=False),
        "openflow: no certificate": openflow_hello(ctl, None),
        "openflow: a stranger's certificate": openflow_hello(ctl, outsider),
        "ovsdb: the controller's certificate (control)": ovsdb_list_dbs(ovsdb, own, str(own.ca)),
        "ovsdb: plain TCP": ovsdb_list_dbs(f"tcp:{hv1.mgmt_ip}:{OVSDB_PORT}", None, None),
        "ovsdb: a stranger's certificate": ovsdb_list_dbs(ovsdb, outsider, str(own.ca)),
        f"ovsdb: {hv2.name}'s certificate, to {hv1.name}": ovsdb_list_dbs(
            ovsdb, lab.pki.hypervisors[hv2.name], str(own.ca)),
    }
    listens = {}
    if lab.nb:
        more, listens = _database(lab, outsider)
        answers.update(more)
    accepted = {k: not v.startswith("refused") for k, v in answers.items()}
    controls_ok = all(accepted[k] for k in accepted if "(control)" in k)
    intruders_in = [k for k in accepted if "(control)" not in k and accepted[k]]
    state = lab.controller_state().get("hypervisors", {})
    targets = {h.name: lab.hv(h.name).ovs.vsctl("get-controller br-int").strip() for h in hvs}
    database_tls = all(m["raft"] and m["raft"].startswith("ssl:") and m["clients"]
                       and all(r.startswith("pssl:") for r in m["clients"]) for m in listens.values())
    ok = (all(figures["segments_seen"].values()) and not any(figures["cleartext_segments"].values())
          and controls_ok and not intruders_in and (database_tls or not lab.nb)
          and all(all(t.startswith("ssl:") for t in target.split()) for target in targets.values())
          and all(state.get(h.name, {}).get("openflow") and state[h.name].get("ovsdb") for h in hvs))
    return {"ok": ok, **figures, "openflow_targets": targets, "database": listens or "embedded (unix socket)",
            "answers": answers, "intruders_accepted": intruders_in, "api": _api_where(lab)}


def _api_where(lab) -> str:
    if lab.controllers:       # each in its namespace, off loopback: only with the bearer token
        return "in each controller's namespace, bearer token required"
    out = subprocess.run(["ss", "-Hltn", "sport", "= :8181"], capture_output=True, text=True).stdout
    on_loopback = bool(out.strip()) and all(" 127.0.0.1:" in f" {line.split()[3]}" for line in out.splitlines())
    return "loopback only" if on_loopback else "NOT loopback"
