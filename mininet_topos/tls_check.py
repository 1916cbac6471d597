"""The `tls` check: every channel the controller talks on is encrypted, and a party without
the right certificate is refused (`packetwalk lab --ssl --test tls`)."""
from __future__ import annotations

import socket
import ssl
import struct
import subprocess

from dataplane.hypervisor import OPENFLOW_PORT, OVSDB_PORT
from dataplane.pki import Credentials, stranger
from mininet_topos.checks import check

OFPT_HELLO_13 = struct.pack("!BBHI", 4, 0, 8, 1)
# The first byte of a TCP segment's payload (tcpdump's BPF arithmetic for the data offset).
FIRST_BYTE = "tcp[((tcp[12:1] & 0xf0) >> 2):1]"
HAS_DATA = "(ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12:1] & 0xf0) >> 2)) > 0"
CHANNELS = f"(tcp port {OPENFLOW_PORT} or tcp port {OVSDB_PORT}) and {HAS_DATA}"
# Cleartext would start with an OpenFlow 1.3 header (version 4) or a JSON-RPC object ("{").
CLEARTEXT = f"{CHANNELS} and ({FIRST_BYTE} = 0x04 or {FIRST_BYTE} = 0x7b)"


def openflow_hello(host: str, creds: Credentials | None, tls: bool = True) -> str:
    """Connect to the controller's OpenFlow port as a switch would, say HELLO, and tell what
    came back: "hello" (accepted), or why not."""
    try:
        with socket.create_connection((host, OPENFLOW_PORT), timeout=3) as raw:
            sock = raw
            if tls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE      # we test the server's checks, not ours
                if creds:
                    ctx.load_cert_chain(creds.cert, creds.key)
                sock = ctx.wrap_socket(raw)
            sock.sendall(OFPT_HELLO_13)
            reply = sock.recv(8)
    except (OSError, ssl.SSLError) as e:
        return f"refused ({type(e).__name__}: {e})"[:160]
    if len(reply) >= 2 and reply[0] == 4 and reply[1] == 0:
        return "hello"
    return f"refused (answer: {reply[:8].hex() or 'connection closed'})"


def ovsdb_list_dbs(target: str, creds: Credentials | None, ca: str | None) -> str:
    """`ovsdb-client list-dbs` against a hypervisor's OVSDB: its databases, or why not."""
    args = ["ovsdb-client", "--timeout=5"]
    if creds:
        args += [f"--private-key={creds.key}", f"--certificate={creds.cert}", f"--ca-cert={ca}"]
    r = subprocess.run(args + ["list-dbs", target], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else f"refused ({r.stderr.strip()[-120:]})"


def _traffic(lab) -> None:
    """Make the controller talk on every channel: a packet-in and its packet-out (an ARP for
    an unbound address), and an OVSDB update on every hypervisor."""
    vm = lab.topo.vms[0]
    lab.vm(vm.name).cmd("arping -q -c 2 -w 1 -I eth0 " + str(lab.topo.switch(vm.switch).subnet[-2]))
    for hv in lab.topo.hypervisors:
        lab.hv(hv.name).ovs.vsctl("set Open_vSwitch . external_ids:pw-tls-check=1")


@check("tls")
def tls(lab) -> dict:
    """OpenFlow and every hypervisor's OVSDB are TLS on the wire (0 cleartext segments on the
    management network while the controller talks on each), and each refuses a party without
    the right certificate: plain TCP, no certificate, a stranger's, another hypervisor's."""
    from mininet_topos.capture import Capture
    from mininet_topos.lab import MGMT_BRIDGE
    with Capture(CHANNELS, interface=MGMT_BRIDGE) as seen, Capture(CLEARTEXT, interface=MGMT_BRIDGE) as clear:
        _traffic(lab)
    if not lab.pki:
        return {"ok": False, "why": "the lab runs without --ssl: OpenFlow and OVSDB are plain TCP",
                "segments_on_controller_channels": seen.count, "cleartext_segments": clear.count}
    ctl, hvs = str(lab.topo.controller_ip), lab.topo.hypervisors
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
    accepted = {k: not v.startswith("refused") for k, v in answers.items()}
    controls_ok = all(accepted[k] for k in accepted if "(control)" in k)
    intruders_in = [k for k in accepted if "(control)" not in k and accepted[k]]
    state = lab.controller_state().get("hypervisors", {})
    targets = {h.name: lab.hv(h.name).ovs.vsctl("get-controller br-int").strip() for h in hvs}
    ok = (seen.count > 0 and clear.count == 0 and controls_ok and not intruders_in
          and all(t.startswith("ssl:") for t in targets.values())
          and all(state.get(h.name, {}).get("openflow") and state[h.name].get("ovsdb") for h in hvs))
    return {"ok": ok, "segments_on_controller_channels": seen.count, "cleartext_segments": clear.count,
            "openflow_targets": targets, "answers": answers, "intruders_accepted": intruders_in,
            "api": "loopback only" if _api_on_loopback(lab) else "NOT loopback"}


def _api_on_loopback(lab) -> bool:
    out = subprocess.run(["ss", "-Hltn", "sport", "= :8181"], capture_output=True, text=True).stdout
    return bool(out.strip()) and all(" 127.0.0.1:" in f" {line.split()[3]}" for line in out.splitlines())
