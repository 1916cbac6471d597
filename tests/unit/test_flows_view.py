"""`packetwalk flows`: ovs-ofctl's lines annotated with table purpose and owner (pure)."""
from __future__ import annotations

import pytest

from packetwalk.flows import FlowsError, annotate, select, table_number, text

# as `ovs-ofctl -O OpenFlow13 --names dump-flows br-int` prints them (names with "_" quoted)
DUMP = """\
 cookie=0x7077601b01e35a03, duration=4.382s, table=classify, n_packets=1, n_bytes=42, priority=100,in_port=vm1 actions=set_field:0x1389->tun_id,goto_table:"arp_snoop"
 cookie=0x7077c69d8d8e1c32, duration=4.079s, table="l2_lookup", n_packets=0, n_bytes=0, priority=100,reg0=0,tun_id=0x138a,dl_dst=00:50:56:00:00:03 actions=output:"vx-hv2"
 cookie=0x7077c69d8d000000, duration=9.000s, table="l2_lookup", n_packets=0, n_bytes=0, priority=100,reg0=0,tun_id=0x138a,dl_dst=00:50:56:00:00:09 actions=output:"vx-hv2"
 cookie=0x1, duration=1.0s, table=99, n_packets=0, n_bytes=0, priority=0 actions=drop
 cookie=0x70772a0f618d01f8, duration=4.382s, table=flood, n_packets=0, n_bytes=0, priority=0 actions=drop
"""
API = [{"cookie": "0x7077601b01e35a03", "owner": "port:vm1"},
       {"cookie": "0x7077c69d8d8e1c32", "owner": "port:vm3"},
       {"cookie": "0x70772a0f618d01f8", "owner": "pipeline"}]


def test_each_line_gets_its_table_purpose_and_owner_in_pipeline_order():
    rows = annotate(DUMP, API)
    assert [(r.table, r.table_name, r.owner) for r in rows] == [
        (0, "classify", "port:vm1"), (60, "l2_lookup", "port:vm3"), (60, "l2_lookup", "stale: port:vm3"),
        (70, "flood", "pipeline"), (99, "99", "-")]
    assert rows[1].purpose == "known unicast" and rows[-1].purpose == "not packetwalk's pipeline"
    assert rows[0].ofctl.startswith("cookie=0x7077601b01e35a03, table=classify, n_packets=1")
    assert "duration" not in rows[0].ofctl


def test_select_by_table_name_or_number_and_by_owner_object_name_or_kind():
    rows = annotate(DUMP, API)
    assert {r.table for r in select(rows, table="l2_lookup")} == {60}
    assert select(rows, table="60") == select(rows, table="L2_LOOKUP")
    assert [r.owner for r in select(rows, owner="port:vm1")] == ["port:vm1"]
    assert [r.owner for r in select(rows, owner="vm3")] == ["port:vm3"]
    assert [r.owner for r in select(rows, owner="port")] == ["port:vm1", "port:vm3"]


def test_an_unknown_table_names_the_tables_there_are():
    with pytest.raises(FlowsError, match=r"--table 'l2': br-int's tables are 0 classify, .*60 l2_lookup"):
        select([], table="l2")
    assert table_number("nope") is None


def test_text_groups_by_table_under_its_purpose():
    out = text("hv1", select(annotate(DUMP, API), owner="port"))
    lines = out.splitlines()
    assert lines[0].startswith("hv1 br-int: 2 flows")
    assert "table 0 classify: port to logical switch" in lines and "table 60 l2_lookup: known unicast" in lines
    assert any(line.startswith("  port:vm3  cookie=0x7077c69d8d8e1c32") for line in lines)
