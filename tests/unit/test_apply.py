"""`packetwalk apply FILE`: reading a lab topology or an intent file (one-line errors), and the
command against the real API server on the controller stand-in (a real embedded database):
what it prints, that a second run changes nothing, and a refusal in one line."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.api import create_api, listen, serve
from controller.intent import parse_intent
from mininet_topos.topology import intent_dict, load_topology
from northbound_standin import InlineController, embedded_database
from packetwalk.apply import ApplyError, read_intent
from packetwalk.cli import main

TOPOS = Path(__file__).resolve().parents[2] / "mininet_topos"
INTENT_FILE = """\
arp_suppression: false
logical_switches:
  - {name: Tenant-A.web, vni: 70001, subnet: 10.7.1.0/24}
logical_ports:
  - {name: tenant-a-web-frontend-0123456789, switch: Tenant-A.web, mac: "00:50:56:07:00:01", learn: true}
"""


# --- reading the file --------------------------------------------------------------------------

def test_a_topology_file_gives_its_logical_part_with_a_port_per_vm():
    d = read_intent(TOPOS / "seed.yaml")
    assert d == intent_dict(load_topology(TOPOS / "seed.yaml"))
    intent = parse_intent(d)
    topo = load_topology(TOPOS / "seed.yaml")
    assert [(p.name, p.mac, p.ips) for p in intent.ports] == [(vm.name, vm.mac, (str(vm.ip),)) for vm in topo.vms]


def test_an_intent_file_is_taken_as_it_is(tmp_path):
    path = tmp_path / "intent.yaml"
    path.write_text(INTENT_FILE)
    d = read_intent(path)
    assert d["arp_suppression"] is False and d["logical_ports"][0]["learn"] is True
    assert parse_intent(d).port("tenant-a-web-frontend-0123456789").switch == "Tenant-A.web"


@pytest.mark.parametrize("text, message", [
    ("logical_switches: [", "{f}: line 1, column 20: YAML syntax error: expected the node content"),
    ("- just\n- a list\n", "{f}: neither a lab topology (no hypervisors) nor an intent file"),
    ("logical_switches: []\nvms: []\n", "{f}: neither a lab topology (no hypervisors) nor an intent file "
                                        "(unknown key 'vms'; allowed: arp_suppression, logical_ports"),
    ("name: t\nhypervisors: [{name: hv1}]\nlogical_switches: [{name: web, vni: 5001, subnet: 10.1.1.0/24}]\n"
     "vms: [{name: vm1, hypervisor: hv1, switch: db, ip: 10.1.1.11}]\n", "{f}: vms[0] 'vm1': "),
], ids=["yaml", "a list", "unknown key", "bad topology"])
def test_a_bad_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ApplyError) as e:
        read_intent(path)
    assert str(e.value).startswith(message.format(f=path)) and "\n" not in str(e.value), str(e.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(ApplyError, match=r"nothing.yaml: cannot read file: No such file or directory$"):
        read_intent(tmp_path / "nothing.yaml")


# --- the command, against the API ----------------------------------------------------------------

@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with embedded_database(tmp_path_factory.mktemp("nb")) as db:
        ctl = InlineController(db)
        sock = listen("127.0.0.1", 0)
        serve(create_api(ctl), sock)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def apply(url, path, *more):
    result = CliRunner().invoke(main, ["apply", str(path), "--api", url, *more])
    return result.exit_code, result.output


def test_apply_prints_what_it_did_and_a_second_run_changes_nothing(url, tmp_path):
    path = tmp_path / "intent.yaml"
    path.write_text(INTENT_FILE)
    code, out = apply(url, path)
    assert code == 0, out
    lines = out.splitlines()
    assert {"created: logical switch Tenant-A.web", "created: logical port tenant-a-web-frontend-0123456789",
            "changed: settings", "deleted: logical switch web", "deleted: logical router dlr1",
            "deleted: logical port vm1"} <= set(lines), out
    assert apply(url, path) == (0, f"nothing to change: the controller's intent already matches {path}\n")
    code, out = apply(url, TOPOS / "seed.yaml", "--json")
    assert code == 0 and '"created": [' in out
    assert apply(url, TOPOS / "seed.yaml")[1].startswith("nothing to change")


def test_a_refused_intent_is_one_line_naming_the_file_and_the_item(url, tmp_path):
    path = tmp_path / "clash.yaml"
    path.write_text("logical_switches:\n  - {name: a, vni: 5001, subnet: 10.1.1.0/24}\n"
                    "  - {name: b, vni: 5001, subnet: 10.1.2.0/24}\n")
    code, out = apply(url, path)
    assert code != 0 and out == (f"packetwalk: {path}: logical_switches[1] 'b': vni 5001 is already used by "
                                 "logical switch 'a'\n")


def test_a_physical_topology_has_no_overlay_intent(tmp_path):
    with pytest.raises(ApplyError) as e:
        read_intent(TOPOS / "physical.yaml")
    assert str(e.value).startswith(f"{TOPOS / 'physical.yaml'}: kind physical") and "\n" not in str(e.value)


def test_a_request_of_the_wrong_shape_names_the_field(url, tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("logical_switches:\n  - {name: a, vni: 5001, subnet: 10.1.1.0/24}\n"
                    "logical_ports:\n  - {name: p, switch: a, mac: '00:50:56:00:00:07', ip: [10.1.1.7]}\n")
    code, out = apply(url, path)
    assert code != 0 and out.startswith(f"packetwalk: {path}: ") and "logical_ports[0] ip: " in out, out
    assert len(out.splitlines()) == 1
