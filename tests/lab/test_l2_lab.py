"""Logical switches over VXLAN on the real lab (l2.yaml: three hypervisors; blue and red
share the subnet 10.1.1.0/24; hv3 hosts only blue)."""
from __future__ import annotations

import re

import pytest

from mininet_topos.checks import arp_suppression, ping, pingall
from mininet_topos.lab import wait_for

pytestmark = pytest.mark.root


def dump_flows(lab, hv: str) -> str:
    return lab.hv(hv).ovs.sh("ovs-ofctl -O OpenFlow13 --no-names dump-flows br-int")   # table=20, not its name


def flow_ages(lab, hv: str) -> dict[str, float]:
    """cookie -> duration (s) of every packetwalk flow on `hv`."""
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r"cookie=(0x7077[0-9a-f]+), duration=([\d.]+)s", dump_flows(lab, hv))}


def test_tunnel_ports_are_made_by_the_controller_for_shared_vnis(l2_lab):
    for hv, remotes in {"hv1": {"hv2", "hv3"}, "hv2": {"hv1", "hv3"}, "hv3": {"hv1", "hv2"}}.items():
        show = l2_lab.hv(hv).ovs.vsctl("show")
        assert set(re.findall(r"Port vx-(\w+)", show)) == remotes
        assert show.count("type: vxlan") == len(remotes)
        assert "key=flow" in show
        owners = l2_lab.hv(hv).ovs.vsctl("--bare --columns=external_ids find Interface type=vxlan")
        assert owners.count("packetwalk-remote") == len(remotes)


def test_pingall_reaches_same_vni_pairs_and_isolates_the_others(l2_lab):
    result = pingall(l2_lab)
    assert result["ok"], result["failures"]
    assert result["matrix"]["r1"]["b3"] == "isolated"       # same subnet, other VNI
    assert result["matrix"]["b1"]["b3"] == "ok"


def test_arp_for_known_bindings_never_crosses_the_underlay(l2_lab):
    result = arp_suppression(l2_lab)
    assert result["underlay_arp_frames"] == 0, result["frames"]
    assert result["replies"] == result["pings"] > 0
    assert result["control"]["frames"] > 0           # the capture does see flooded ARP


def test_arp_responder_flows_carry_cookies_and_answer_locally(l2_lab):
    flows = dump_flows(l2_lab, "hv3")
    responders = re.findall(r"table=20,.*priority=100,arp,tun_id=(0x[0-9a-f]+).*arp_tpa=([\d.]+)", flows)
    assert ("0x1389", "10.1.1.12") in responders            # b2 on blue, answered on hv3
    assert ("0x1389", "10.1.1.50") in responders            # the static binding
    assert not any(vni == "0x138a" for vni, _ in responders)  # hv3 hosts no red port


def test_a_port_naming_no_logical_port_is_ignored_and_the_controller_carries_on(l2_lab):
    hv = l2_lab.hv("hv3").ovs
    hv.vsctl("add-port br-int junk0 -- set interface junk0 type=internal external_ids:iface-id=junk")
    try:
        log = l2_lab.rundir / "controller" / "controller.log"
        wait_for(lambda: "interface junk0 names logical port 'junk', which intent does not have" in log.read_text(),
                 10, "the controller to leave junk0 unattached")
        # (a device appearing on a hypervisor can cost a frame or two across its tunnels in OVS's
        # userspace datapath, whatever the controller does: the VM must answer, not the first ping)
        wait_for(lambda: ping(l2_lab.vm("b3"), "10.1.1.11") == 1, 10, "b3 to reach b1 with junk0 on hv3")
    finally:
        hv.vsctl("del-port br-int junk0")


def test_controller_restart_reconverges_without_touching_flows(l2_lab):
    before = {hv: flow_ages(l2_lab, hv) for hv in ("hv1", "hv2", "hv3")}
    l2_lab.restart_controller()
    state = l2_lab.controller_state()["hypervisors"]
    assert {hv: state[hv]["flow_mods"] for hv in state} == {"hv1": 0, "hv2": 0, "hv3": 0}
    for hv, ages in before.items():
        after = flow_ages(l2_lab, hv)
        assert set(after) == set(ages)                                  # same flows, same cookies
        assert all(after[c] >= ages[c] for c in ages)                   # never re-added
    assert ping(l2_lab.vm("b1"), "10.1.1.13") == 1


DEVICE_ROUNDS = 60


def test_devices_coming_and_going_on_a_hypervisor_cost_its_tunnels_nothing(l2_lab):
    """A device appears, comes up and goes on hv2, DEVICE_ROUNDS times (a VM port does so in
    every move), while b1 on hv1 pings b2 on hv2 every 10 ms across their tunnel: no ping is
    lost. (OVS rebuilt its tunnel routes on every link event and lost a few frames each
    time: dataplane/hypervisor.py, VTEP_ROUTING.)"""
    from mininet_topos.checks_intent import Pinger
    hv = l2_lab.hv("hv2")
    pinger = Pinger(l2_lab, "b1", "10.1.1.12", "device-rounds")
    try:
        pinger.wait_replies(3)
        for i in range(DEVICE_ROUNDS):
            hv.cmd(f"ip link add pw-dev{i} type veth peer name pw-devp{i} && ip link set pw-dev{i} up"
                   f" && ip link set pw-devp{i} up")
            pinger.wait_replies(2)
            hv.cmd(f"ip link del pw-dev{i}")
            pinger.wait_replies(2)
    finally:
        hv.cmd(f"for i in $(seq 0 {DEVICE_ROUNDS - 1}); do ip link del pw-dev$i 2>/dev/null; done")
        result = pinger.stop()
    assert result["pings_lost"] == 0, result


def test_vm_moves_to_another_hypervisor_and_flows_follow(l2_lab):
    observer = l2_lab.vm("b1")
    observer.sendCmd("ping -n -i 0.01 -c 300 -W 1 10.1.1.12")         # b2, on hv2 ...
    l2_lab.move_vm("b2", "hv3")                                       # ... moves to hv3
    out = observer.waitOutput()
    sent, got = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())
    assert got > 0 and sent - got < 50, out                           # a short blip, then back
    state = l2_lab.controller_state()["hypervisors"]
    assert "b2" in state["hv3"]["attachments"] and "b2" not in state["hv2"]["attachments"]
    wait_for(lambda: ping(observer, "10.1.1.12") == 1, 10, "b2 to answer on hv3")    # (see the junk0 test)
    assert "10.1.1.12" in [m for m in re.findall(r"arp_tpa=([\d.]+)", dump_flows(l2_lab, "hv3"))]
    l2_lab.move_vm("b2", "hv2")


def test_a_live_migration_has_the_vm_in_both_places_then_only_in_the_new_one(l2_lab):
    """b2's port appears on hv3 with the same iface-id while b2 still runs on hv2: the
    controller has it in both places and b2 answers (from hv2); after the switchover its
    port is gone from hv2's br-int and it answers from hv3, its vNIC still named eth0."""
    from mininet_topos import migration
    seen = {}

    def made(ofport):
        if not l2_lab.port_made("b2", "hv3", ofport):
            return False
        state = l2_lab.controller_state()["hypervisors"]
        seen["both"] = "b2" in state["hv2"]["attachments"] and "b2" in state["hv3"]["attachments"]
        seen["answers"] = ping(l2_lab.vm("b1"), "10.1.1.12")
        return True
    migration.live_migrate(l2_lab, "b2", "hv3", made)
    try:
        assert seen == {"both": True, "answers": 1}
        wait_for(lambda: "b2" not in l2_lab.controller_state()["hypervisors"]["hv2"]["attachments"], 10,
                 "b2 to leave hv2")
        assert "b2" not in l2_lab.hv("hv2").ovs.sh("ovs-vsctl list-ports br-int").split()
        assert "b2" in l2_lab.hv("hv3").ovs.sh("ovs-vsctl list-ports br-int").split()
        wait_for(lambda: ping(l2_lab.vm("b1"), "10.1.1.12") == 1, 10, "b2 to answer from hv3")
        assert "10.1.1.12/24" in l2_lab.vm("b2").cmd("ip -4 addr show dev eth0")
    finally:
        l2_lab.move_vm("b2", "hv2")
    assert "10.1.1.12/24" in l2_lab.vm("b2").cmd("ip -4 addr show dev eth0")


def test_a_write_with_wait_hv_answers_once_every_hypervisor_holds_it(l2_lab):
    """?wait=hv (OVN's --wait=hv): when the answer comes, every hypervisor of the switch
    already answers ARP for the new binding (bundles confirmed), with no polling."""
    import json
    import urllib.request
    body = json.dumps({"ip": "10.1.1.77", "mac": "00:50:56:00:77:01"}).encode()
    req = urllib.request.Request(f"{l2_lab.api}/v1/logical-switches/blue/bindings?wait=hv", data=body,
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=15) as r:
        realized = int(r.headers["x-packetwalk-realized"])
    for hv in ("hv1", "hv2", "hv3"):
        assert "arp_tpa=10.1.1.77" in dump_flows(l2_lab, hv), hv
    with urllib.request.urlopen(f"{l2_lab.api}/v1/realized", timeout=5) as r:
        assert json.load(r)["realized"] >= realized
    req = urllib.request.Request(f"{l2_lab.api}/v1/logical-switches/blue/bindings/10.1.1.77?wait=hv",
                                 method="DELETE")
    urllib.request.urlopen(req, timeout=15).close()
    assert all("arp_tpa=10.1.1.77" not in dump_flows(l2_lab, hv) for hv in ("hv1", "hv2", "hv3"))


def test_a_hypervisor_whose_daemons_die_is_down_within_3_s_and_the_others_lose_nothing(l2_lab):
    from mininet_topos.restart import hypervisor_restart
    result = hypervisor_restart(l2_lab)
    assert result["ok"], result
    assert result["pings_lost_elsewhere"] == 0 and result["pings_sent_elsewhere"] > 0
    for case in ("ovs-vswitchd hung", "ovs-vswitchd", "ovsdb-server"):
        assert result[case]["seconds_to_notice"] <= 3 and result[case]["still_flooded_to_by"] == [], case
    assert ping(l2_lab.vm("b1"), "10.1.1.13") == 1
