"""`packetwalk show` over HTTP against the real API server (uvicorn, as the controller runs
it) on the controller stand-in: the tables it prints, --json, and its one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from controller.api import create_api, listen, serve
from northbound_standin import InlineController, embedded_database
from packetwalk.cli import main
from packetwalk.show import table


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with embedded_database(tmp_path_factory.mktemp("nb")) as db:
        ctl = InlineController(db)
        sock = listen("127.0.0.1", 0)
        serve(create_api(ctl), sock)      # a daemon thread: it ends with the test run
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def show(url, *args):
    result = CliRunner().invoke(main, ["show", *args, "--api", url])
    return result.exit_code, result.output


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_table_aligns_columns_under_the_header():
    assert table(["VNI", "IP"], [[5001, "10.1.1.1"], [5002, None]]).splitlines() == [
        "VNI   IP", "5001  10.1.1.1", "5002  -"]


def test_show_hypervisors(url):
    code, out = show(url, "hypervisors")
    assert code == 0, out
    assert rows(out)[0] == ["Hypervisor", "Address", "VTEP-IP", "DPID", "OpenFlow", "OVSDB", "State", "Ports", "Flows"]
    assert rows(out)[1][:8] == ["hv1", "169.254.77.2", "192.168.50.1", "0000000000000001", "up", "up", "up", "2"]


def test_show_vteps_by_name_and_by_vni_is_the_same_table(url):
    code, out = show(url, "vteps", "web")
    assert code == 0 and rows(out) == [["VNI", "Hypervisor", "VTEP-IP", "Ports"],
                                       ["5001", "hv1", "192.168.50.1", "2"], ["5001", "hv2", "192.168.50.2", "1"]]
    assert show(url, "vteps", "5001") == (0, out)


def test_show_mac_and_arp_tables(url):
    code, out = show(url, "mac-table", "app")
    assert code == 0 and rows(out) == [["VNI", "MAC", "VM", "Hypervisor", "VTEP-IP", "Port"],
                                       ["5002", "00:50:56:00:00:03", "vm3", "hv2", "192.168.50.2", "vm3"]]
    code, out = show(url, "arp-table", "5002")
    assert code == 0 and rows(out)[1:] == [["5002", "10.1.2.1", "02:50:56:56:44:52", "lif"],
                                           ["5002", "10.1.2.13", "00:50:56:00:00:03", "port"]]


def test_show_routers_lists_lifs_then_routes(url):
    code, out = show(url, "routers")
    assert code == 0
    lifs, routes = out.split("\n\n")
    assert rows(lifs)[1:] == [["dlr1", "app", "5002", "10.1.2.1", "10.1.2.0/24"],
                              ["dlr1", "web", "5001", "10.1.1.1", "10.1.1.0/24"]]
    assert rows(routes) == [["Router", "Prefix", "Next-Hop"], ["dlr1", "0.0.0.0/0", "10.1.2.254"]]


def test_show_tunnels_json_is_the_apis_answer(url):
    code, out = show(url, "tunnels", "hv2", "--json")
    assert code == 0 and json.loads(out) == [
        {"remote": "hv1", "remote_vtep_ip": "192.168.50.1", "ofport": 4, "bfd": "down"}]


@pytest.mark.parametrize("args, message", [
    (["vteps", "db"], "packetwalk: no logical switch 'db' (known: app (5002), spare (5009), web (5001))"),
    (["tunnels", "hv7"], "packetwalk: no hypervisor 'hv7' (connected: hv1, hv2)"),
])
def test_unknown_names_print_the_apis_404_message_and_exit_1(url, args, message):
    assert show(url, *args) == (1, message + "\n")


def test_no_controller_is_one_line_and_exit_1():
    free = listen("127.0.0.1", 0)           # bound and listening, then closed: nobody is there
    port = free.getsockname()[1]
    free.close()
    run = subprocess.run([sys.executable, "-m", "packetwalk.cli", "show", "hypervisors",
                          "--api", f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith(f"packetwalk: no controller API at http://127.0.0.1:{port} (")
    assert len(run.stderr.splitlines()) == 1 and "Traceback" not in run.stderr
