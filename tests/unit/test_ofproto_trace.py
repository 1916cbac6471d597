"""Reading ofproto/trace output (real OVS 3.1 output, saved from the lab)."""
from pathlib import Path

from packetwalk.ofproto_trace import fields, parse

TRACES = Path(__file__).parent / "traces"


def test_routed_trace_lists_every_table_with_its_cookie_and_the_tunnel():
    t = parse((TRACES / "routed_cross_host.txt").read_text())
    assert t.bridge == "br-int"
    assert [h.table for h in t.hits] == [0, 10, 20, 30, 40, 50, 60]      # br-phy's NORMAL is not ours
    assert t.hits[4].priority == 1024 and t.hits[4].cookie == 0x7077d91c414faedf
    assert t.hits[4].actions[:2] == ["dec_ttl", "set_field:02:50:56:56:44:52->eth_src"]
    assert t.hits[-1].outputs == ["3"]
    assert t.tunnels == [{"remote_ip": "192.168.50.2", "port": "3", "local_mac": "9a:9a:5c:39:44:4e",
                          "local_ip": "192.168.50.1", "remote_mac": "2a:a0:c8:19:47:43"}]
    assert t.final_flow["nw_ttl"] == "63" and t.final_flow["tun_id"] == "0x138a"
    assert not t.dropped


def test_arp_responder_trace_ends_in_port():
    t = parse((TRACES / "arp_suppressed.txt").read_text())
    last = t.hits[-1]
    assert last.table == 20 and last.in_port and not last.outputs
    assert t.final_flow["arp_op"] == "2" and t.final_flow["arp_spa"] == "10.1.1.12"
    assert t.tunnels == []


def test_fields_splits_a_flow():
    assert fields("icmp,in_port=1,nw_ttl=64") == {"icmp": "", "in_port": "1", "nw_ttl": "64"}


def test_drop_and_no_match():
    t = parse("Flow: ip\n\nbridge(\"br-int\")\n----------------\n 0. No match.\n    drop\n\n"
              "Final flow: unchanged\nDatapath actions: drop\n")
    assert t.dropped and t.no_match_table == 0 and t.hits == []


def test_local_delivery_through_a_failover_group_names_the_port():
    t = parse((TRACES / "routed_local_group.txt").read_text())
    assert [h.table for h in t.hits] == [0, 5, 10, 20, 30, 40, 45, 50, 60]
    last = t.hits[-1]
    assert last.actions[0].startswith("group:") and last.outputs == ["2"]
    assert not t.dropped and t.tunnels == []
    assert t.final_flow["dl_dst"] == "00:50:56:00:00:04"       # set after check_pkt_larger forked the trace
