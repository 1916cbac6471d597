"""The user's own workflow on one lab (issue 12): a Ryu app under `ryu-manager` beside our
controller, flow tables with names, `packetwalk flows`, and the Mininet CLI session."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mininet.log import setLogLevel

from mininet_topos.lab import wait_for
from packetwalk.mininet_cli import PacketwalkCLI

pytestmark = pytest.mark.root
HERE = Path(__file__).resolve().parent
RYU_PORT = 6633                 # the Ryu app's controller port (ours listens on 6653)
RYU_COOKIE = "0x52590000"       # tests/lab/ryu_learning_switch.py's flows
HOSTS = {"ryu1": ("10.99.0.1", "02:99:00:00:00:01"), "ryu2": ("10.99.0.2", "02:99:00:00:00:02")}


@pytest.fixture(scope="module")
def lab(seed_lab):
    return seed_lab


def dump(hv, bridge: str, names: bool = False) -> str:
    return hv.ovs.sh(f"ovs-ofctl -O OpenFlow13 {'--names ' if names else ''}dump-flows {bridge}")


def test_flow_tables_carry_their_names_written_by_the_controller(lab):
    hv = lab.hv("hv1")
    flows = dump(hv, "br-int", names=True)
    tables = set(re.findall(r'table="?(\w+)', flows))       # OVS quotes names with "_": table="l2_lookup"
    assert {"classify", "arp_responder", "l2_lookup", "flood"} <= tables
    assert not {t for t in tables if t.isdigit()}          # every table has its name
    rows = hv.ovs.vsctl("--columns=name --format=csv --no-headings list Flow_Table").split()
    assert "l2_lookup" in rows and "classify" in rows
    assert "table=60," in hv.ovs.sh("ovs-ofctl -O OpenFlow13 --no-names dump-flows br-int")


def test_packetwalk_flows_annotates_each_flow_with_table_purpose_and_owner(lab):
    run = subprocess.run([sys.executable, "-m", "packetwalk.cli", "flows", "hv1", "--table", "l2_lookup", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert rows and {r["table_name"] for r in rows} == {"l2_lookup"}
    assert {r["purpose"] for r in rows} == {"known unicast"}
    vm = lab.topo.vm("vm2")
    mine = [r for r in rows if r["owner"] == "port:vm2"]
    assert mine and all(f"dl_dst={vm.mac}" in r["ofctl"] and 'table="l2_lookup"' in r["ofctl"] for r in mine)
    text = subprocess.run([sys.executable, "-m", "packetwalk.cli", "flows", "hv1", "--owner", "vm1"],
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "table 0 classify: port to logical switch" in text.stdout
    owners = {line.split()[0] for line in text.stdout.splitlines() if line.startswith("  ")}
    assert owners == {"port:vm1"}


def test_the_mininet_cli_session(lab, tmp_path, capfd, caplog):
    vm1, vm3 = lab.topo.vm("vm1"), lab.topo.vm("vm3")
    script = tmp_path / "session"
    script.write_text("\n".join([
        "help",
        "net",
        "dump",
        "vm1 ping -c 1 vm3",
        "hv1 ovs-ofctl dump-flows br-int",          # a node's shell is a terminal: names by default
        f"hv1 ovs-appctl ofproto/trace br-int in_port=vm1,icmp,dl_src={vm1.mac},dl_dst={lab.topo.vmac},"
        f"nw_src={vm1.ip},nw_dst={vm3.ip},nw_ttl=64",
        "hv1 ovs-vsctl get interface vm1 ofport",
        "vm2 ping -c 30 -i 0.2 vm1 > /dev/null 2>&1 &",
        "vm1 tcpdump -c 3 -n -i eth0 icmp",
        "walk vm1 vm3",
        "",
    ]))
    never = os.pipe()                        # the CLI polls stdin for keys to pass on: nothing comes
    setLogLevel("output")                    # as `packetwalk lab` sets it: the CLI prints at this level
    try:
        with open(never[0]) as stdin:
            PacketwalkCLI(lab.net, lab.rundir, stdin=stdin, script=str(script))
    finally:
        setLogLevel("error")
        os.close(never[1])
    out = capfd.readouterr()
    text = out.out + out.err + "".join(r.getMessage() for r in caplog.records)   # Mininet prints by logging
    assert "packetwalk commands:" in text and "walk SRC DST" in text          # help lists ours
    assert "hv1 vmnic0:" in text and "vm1 eth0:" in text                       # net
    assert "<HypervisorNode hv1" in text and "<VM vm1" in text                 # dump
    assert "1 packets transmitted, 1 received" in text                         # vm1 ping vm3
    assert 'table="l2_lookup"' in text                                         # dump-flows, with names
    assert "Datapath actions:" in text                                         # ofproto/trace
    assert "no row" not in text                                  # at a hypervisor, vm1 is not vm1's IP
    assert re.search(r"3 packets captured", text)                              # tcpdump, no xterm
    assert f"Packet walk: vm1 -> vm3 (icmp)" in text and "Verdict: delivered to vm3 on hv2" in text


def _add_host(lab, name: str, hv):
    ip, mac = HOSTS[name]
    host = lab.net.addHost(name, ip=f"{ip}/24", mac=mac)
    lab.net.addLink(host, hv, intfName1="eth0", intfName2=name)
    host.configDefault()
    hv.cmd(f"ip link set {name} up")
    return host


def test_a_ryu_app_runs_under_ryu_manager_beside_our_controller(lab, tmp_path):
    """tests/lab/ryu_learning_switch.py (written against `ryu.*`) controls br-ryu on hv1;
    our controller keeps br-int."""
    hv = lab.hv("hv1")
    ctl = str(lab.topo.controller_ip)
    hosts, manager = [], None
    try:
        hosts = [_add_host(lab, name, hv) for name in HOSTS]
        hv.ovs.vsctl("add-br br-ryu -- set bridge br-ryu datapath_type=netdev fail_mode=secure",
                     "protocols=OpenFlow13", "-- add-port br-ryu ryu1 -- add-port br-ryu ryu2",
                     f"-- set-controller br-ryu tcp:{ctl}:{RYU_PORT}")
        ping = f"ping -c 3 -i 0.2 -W 2 {HOSTS['ryu2'][0]}"
        assert " 0 received" in hosts[0].cmd(f"ping -c 1 -W 1 {HOSTS['ryu2'][0]}")   # no app, no forwarding
        hosts[0].cmd("ip neigh flush all")          # its failed ARP would answer the next ping at once

        ryu_manager = Path(sys.executable).parent / "ryu-manager"
        log = open(tmp_path / "ryu-manager.log", "w")
        manager = subprocess.Popen([str(ryu_manager), "--ofp-listen-host", ctl, "--ofp-tcp-listen-port",
                                    str(RYU_PORT), str(HERE / "ryu_learning_switch.py")],
                                   stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: manager.poll() is None and RYU_COOKIE in dump(hv, "br-ryu"), 60,
                 "the Ryu app's table-miss flow on br-ryu")

        assert "3 received" in hosts[0].cmd(ping)
        flows = dump(hv, "br-ryu")
        learned = [line for line in flows.splitlines() if "priority=1," in line]
        assert {m for line in learned for m in re.findall(r"dl_dst=([0-9a-f:]+)", line)} == \
            {mac for _, mac in HOSTS.values()}
        assert all(f"cookie={RYU_COOKIE}" in line for line in flows.splitlines() if "cookie=" in line)
        assert RYU_COOKIE not in dump(hv, "br-int")                     # br-int stays ours ...
        assert "1 received" in lab.vm("vm1").cmd(f"ping -c 1 -W 2 {lab.topo.vm('vm2').ip}")   # ... and works
        assert "learning switch" in (tmp_path / "ryu-manager.log").read_text()
    finally:
        if manager is not None:
            manager.terminate()
            manager.wait(10)
        hv.ovs.vsctl("--if-exists del-br br-ryu")
        for host in hosts:
            lab.net.delHost(host)
