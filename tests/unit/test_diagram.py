"""packetwalk.diagram: what the drawn SVG really holds (Graphviz's dot does the drawing)."""
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mininet_topos.topology import load_topology
from packetwalk.diagram import render

TOPOS = Path(__file__).resolve().parents[2] / "mininet_topos"
SVG = "{http://www.w3.org/2000/svg}"
WALK = ["vm1", "hv1", "underlay", "hv2", "vm3"]


@pytest.fixture(scope="module")
def seed():
    return load_topology(TOPOS / "seed.yaml")


def groups(svg: str, kind: str) -> dict[str, dict]:
    """Graphviz's SVG groups of one class ("node", "edge", "cluster"): title -> what is drawn."""
    found = {}
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        if g.get("class") == kind:
            title = g.find(f"{SVG}title").text
            found.setdefault(title, []).append({
                "texts": [t.text for t in g.iter(f"{SVG}text")],
                "strokes": {p.get("stroke") for p in g.iter(f"{SVG}path")},
                "raw": ET.tostring(g, encoding="unicode"),
            })
    return found


def texts(svg: str) -> list[str]:
    return [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]


def draw(topology, tmp_path, name="out.svg", **kw) -> str:
    out = render(topology, tmp_path / name, **kw)
    assert out == tmp_path / name
    return out.read_text(encoding="utf-8")


def test_seed_shows_vms_vteps_vnis_and_the_router_on_both_hypervisors(seed, tmp_path):
    svg = draw(seed, tmp_path)
    words = texts(svg)
    for vm in seed.vms:
        assert vm.name in words and str(vm.ip) in words and vm.mac in words
    for hv in seed.hypervisors:
        assert hv.name in words and f"VTEP {hv.vtep_ip}" in words
    assert "web · VNI 5001" in words and "app · VNI 5002" in words     # colour legend per VM
    assert {"VNI 5001", "VNI 5002", "10.1.1.0/24", "10.1.2.0/24"} <= set(words)  # logical view
    nodes = groups(svg, "node")
    for hv in ("hv1", "hv2"):
        router = nodes[f"rt_dlr1_{hv}"][0]["texts"]
        assert router == ["dlr1 (distributed)", "10.1.1.1", " | ", "10.1.2.1",
                          "vMAC 02:50:56:56:44:52"]
    assert words.count("dlr1 (distributed)") == 2
    assert "underlay · physical switch" in words
    edges = groups(svg, "edge")
    assert {"hv_hv1->underlay", "hv_hv2->underlay"} <= set(edges)
    assert "red" not in {s for e in edges.values() for g in e for s in g["strokes"]}


def test_walk_is_numbered_red_edges_over_an_unchanged_layout(seed, tmp_path):
    plain = draw(seed, tmp_path, "plain.svg", title="t")
    walked = draw(seed, tmp_path, "walk.svg", path=WALK, title="t")
    red = {title: g for title, gs in groups(walked, "edge").items() for g in gs
           if "red" in g["strokes"]}
    assert {title: g["texts"] for title, g in red.items()} == {
        "vm_vm1->hv_hv1": ["1"], "hv_hv1->underlay": ["2"],
        "underlay->hv_hv2": ["3"], "hv_hv2->vm_vm3": ["4"]}
    assert all('stroke="red"' in g["raw"] for g in red.values())
    before, after = groups(plain, "node"), groups(walked, "node")
    assert {n: before[n] for n in before if n != "underlay"} == \
           {n: after[n] for n in after if n != "underlay"}       # VMs, routers, VTEPs stay put


def test_placement_moves_vms_and_the_router_follows(seed, tmp_path):
    svg = draw(seed, tmp_path, placement={"vm2": "hv1", "vm3": "hv1"})
    nodes = groups(svg, "node")
    assert "rt_dlr1_hv1" in nodes and "rt_dlr1_hv2" not in nodes   # hv2 now hosts no VM
    assert texts(svg).count("dlr1 (distributed)") == 1
    assert nodes["hv_hv2"][0]["texts"] == ["vSwitch · VTEP", "VNI none"]
    with pytest.raises(ValueError, match=r"unknown path id 'dlr1@hv2' \(known: .*dlr1@hv1"):
        render(seed, tmp_path / "x.svg", path=["vm1", "dlr1@hv2"],
               placement={"vm2": "hv1", "vm3": "hv1"})


@pytest.mark.parametrize("placement, problem", [
    ({"vm9": "hv1"}, "unknown VM 'vm9' (known: vm1, vm2, vm3, vm4)"),
    ({"vm1": "hv7"}, "unknown hypervisor 'hv7' (known: hv1, hv2)"),
])
def test_placement_names_must_exist(seed, tmp_path, placement, problem):
    with pytest.raises(ValueError) as err:
        render(seed, tmp_path / "x.svg", placement=placement)
    assert str(err.value) == problem


@pytest.mark.parametrize("name, suffix", [("walk.pdf", "'.pdf'"), ("walk", "'(none)'")])
def test_bad_suffix_is_refused(seed, tmp_path, name, suffix):
    with pytest.raises(ValueError) as err:
        render(seed, tmp_path / name)
    assert str(err.value) == (f"cannot draw {name}: suffix {suffix} is not supported "
                              "(use one of .svg, .png)")
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("hop", ["vm9", "dlr1", "r1"])
def test_unknown_path_id_is_refused_with_the_known_ones(seed, tmp_path, hop):
    with pytest.raises(ValueError) as err:
        render(seed, tmp_path / "x.svg", path=["vm1", hop])
    assert str(err.value) == (f"unknown path id {hop!r} (known: dlr1@hv1, dlr1@hv2, hv1, hv2, "
                              "underlay, vm1, vm2, vm3, vm4)")


def test_png_is_a_png(seed, tmp_path):
    out = render(seed, tmp_path / "walk.PNG", path=WALK)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_physical_has_plain_hosts_vlans_and_one_central_router(tmp_path):
    physical = load_topology(TOPOS / "physical.yaml")
    walk = ["vm1", "hv1", "underlay", "r1", "underlay", "hv2", "vm3"]
    svg = draw(physical, tmp_path, path=walk)
    words = texts(svg)
    assert not any(w.startswith("VTEP") for w in words)
    assert {"web · VLAN 101", "app · VLAN 102", "VLAN trunk 101, 102"} <= set(words)
    nodes = groups(svg, "node")
    assert [n for n in nodes if n.startswith("rt_")] == ["rt_r1"]
    assert "underlay->rt_r1" in groups(svg, "edge")
    red = [g["texts"] for gs in groups(svg, "edge").values() for g in gs if "red" in g["strokes"]]
    assert sorted(red) == [["1"], ["2"], ["3"], ["4"], ["5"], ["6"]]
    with pytest.raises(ValueError, match="unknown path id 'r1@hv1'"):
        render(physical, tmp_path / "x.svg", path=["r1@hv1"])


def test_l2_draws_three_hosts_and_no_router(tmp_path):
    l2 = load_topology(TOPOS / "l2.yaml")
    svg = draw(l2, tmp_path, path=["b1", "hv1", "underlay", "hv3", "b3"])
    words = texts(svg)
    assert {"VTEP 192.168.50.1", "VTEP 192.168.50.2", "VTEP 192.168.50.3"} <= set(words)
    assert words.count("10.1.1.11") == 2                     # b1 and r1: same IP, other VNI
    assert not any(n.startswith(("rt_", "lr_")) for n in groups(svg, "node"))
