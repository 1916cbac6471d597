"""The controller's own database (controller/nbdb.py) with the real ovsdb-tool and ovsdb-server:
the file made on first start, refused (and left byte for byte) when foreign, damaged or newer,
converted with its data on a schema upgrade; intent writes that are checked transactions, two
writers racing, a client that follows another's writes, and rows written around the API."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time

import pytest

from controller import nbdb
from controller.intent import IntentError
from northbound_standin import embedded_database

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None or shutil.which("ovsdb-tool") is None,
                                reason="Open vSwitch's ovsdb-server and ovsdb-tool are not installed")
WEB = {"name": "web", "vni": 5001, "subnet": "10.1.1.0/24"}
SCHEMA = json.loads(nbdb.SCHEMA.read_text())


def tool(*args: str) -> str:
    done = subprocess.run(["ovsdb-tool", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def new_file(directory, schema: dict):
    """A database file made by ovsdb-tool from `schema`, where EmbeddedServer looks for its own."""
    directory.mkdir(exist_ok=True)
    (directory / "schema.json").write_text(json.dumps(schema))
    tool("create", str(directory / nbdb.DB_FILE), str(directory / "schema.json"))
    return directory / nbdb.DB_FILE


def with_switch(directory):
    """A packetwalk database holding the switch WEB, written by a real server."""
    with embedded_database(directory) as db:
        db.change_intent(lambda d: d["logical_switches"].append(WEB))
    return directory / nbdb.DB_FILE


def wait_until(condition, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# --- the file --------------------------------------------------------------------------------------

def test_the_first_start_creates_the_database_and_the_next_uses_it(tmp_path):
    server = nbdb.EmbeddedServer(tmp_path / "new" / "dir")
    assert server.prepare() == f"created {server.file}"
    assert tool("db-name", str(server.file)) == nbdb.DB_NAME
    assert server.prepare() == f"using {server.file} (schema {SCHEMA['version']})"


def _foreign(directory):
    return new_file(directory, {"name": "Open_vSwitch", "version": "8.3.0",
                                "tables": {"Bridge": {"columns": {"name": {"type": "string"}}}}})


def _junk(directory):
    directory.mkdir()
    (directory / nbdb.DB_FILE).write_bytes(b"OVSDB JSON 12 3f5a\n{not json at all\n")
    return directory / nbdb.DB_FILE


def _truncated(directory):
    """A packetwalk database whose last record (the switch) lost its end: ovsdb-server alone
    would drop that record and carry on."""
    path = with_switch(directory)
    path.write_bytes(path.read_bytes()[:-20])
    return path


def _newer(directory):
    return new_file(directory, {**SCHEMA, "version": "99.0.0"})


def _clustered(directory):
    directory.mkdir()
    tool("create-cluster", str(directory / nbdb.DB_FILE), str(nbdb.SCHEMA), "tcp:127.0.0.1:6644")
    return directory / nbdb.DB_FILE


@pytest.mark.parametrize("make, problem", [
    (_foreign, "holds the database 'Open_vSwitch', not packetwalk's ('Packetwalk'); left as it is"),
    (_junk, "not a database ovsdb-tool can read"),
    (_truncated, "damaged (I/O error: "),
    (_newer, f"schema 99.0.0 is newer than this controller's {SCHEMA['version']}; left as it is"),
    (_clustered, "is a clustered database: give its servers with --nb instead"),
], ids=["foreign", "junk", "truncated", "newer", "clustered"])
def test_a_file_it_cannot_use_is_refused_naming_it_and_left_byte_for_byte(tmp_path, make, problem):
    path = make(tmp_path / "db")
    before, files = digest(path), sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(nbdb.DatabaseError) as e:
        nbdb.EmbeddedServer(path.parent).prepare()
    assert str(e.value).startswith(f"{path}: ") and problem in str(e.value), str(e.value)
    assert "\n" not in str(e.value)
    assert digest(path) == before and sorted(p.name for p in path.parent.iterdir()) == files


def test_a_schema_upgrade_converts_the_file_and_keeps_its_data(tmp_path):
    old = {**SCHEMA, "version": "0.9.0", "tables": {k: v for k, v in SCHEMA["tables"].items() if k != "Controller"}}
    path = new_file(tmp_path / "db", old)
    tool("transact", str(path), json.dumps(["Packetwalk", {"op": "insert", "table": "Logical_Switch", "row": WEB},
                                            {"op": "insert", "table": "Global", "row": {
                                                "vmac": "02:00:00:00:00:01", "arp_suppression": False,
                                                "generation": 7}}]))
    before = path.read_bytes()
    server = nbdb.EmbeddedServer(path.parent)
    said = server.prepare()
    assert said.startswith(f"converted {path} from schema 0.9.0 to {SCHEMA['version']}"), said
    assert tool("db-version", str(path)) == SCHEMA["version"]
    assert path.with_name(f"{nbdb.DB_FILE}.0.9.0.bak").read_bytes() == before
    with embedded_database(path.parent) as db:
        snap = db.read()
    assert snap["intent"]["logical_switches"] == [WEB] and snap["generation"] == 7
    assert (snap["intent"]["vmac"], snap["intent"]["arp_suppression"]) == ("02:00:00:00:00:01", False)


# --- writing intent ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = nbdb.EmbeddedServer(tmp_path_factory.mktemp("nbdb"))
    server.prepare()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clients(server):
    """Two clients of one server, the database emptied first."""
    made = []

    def connect(on_change=lambda table=None: None):
        client = nbdb.NbClient(server.remote, on_change)
        client.connect()
        made.append(client)
        return client
    connect().change_intent(lambda d: d.clear(), exact=True)
    yield connect
    for client in made:
        client.close()


def test_change_intent_writes_the_difference_and_counts_generations(clients):
    db = clients()
    generation = db.read()["generation"]
    intent, summary = db.change_intent(lambda d: d["logical_switches"].append(WEB))
    assert summary == {"created": ["logical switch web"], "changed": [], "deleted": []}
    assert intent.switch("web").vni == 5001 and db.read()["generation"] == generation + 1
    assert db.change_intent(lambda d: None)[1] == {"created": [], "changed": [], "deleted": []}
    assert db.read()["generation"] == generation + 1


@pytest.mark.parametrize("edit, error", [
    (lambda d: d["logical_switches"].append({**WEB, "name": "app"}), IntentError),     # the same VNI
    (lambda d: d["logical_ports"].append({"name": "p", "switch": "nowhere", "mac": "00:50:56:00:00:07"}),
     IntentError),
    (lambda d: (d["logical_switches"].append({"name": "app", "vni": 5002, "subnet": "10.1.2.0/24"}),
                d["logical_switches"][0].update(subnet="10.9.0.1/24")), IntentError),   # one good, one bad
    (lambda d: d["nothing"].append(1), KeyError),                                       # the edit's own error
], ids=["vni taken", "unknown switch", "half good", "edit fails"])
def test_a_refused_change_writes_nothing(clients, edit, error):
    db = clients()
    db.change_intent(lambda d: d["logical_switches"].append(WEB))
    before = db.read()
    with pytest.raises(error):
        db.change_intent(edit)
    assert db.read() == before


def test_two_writers_racing_both_commit_on_each_others_result(clients):
    a, b = clients(), clients()
    generation = a.read()["generation"]
    start = threading.Barrier(2)
    errors = []

    def writer(db, first_vni):
        start.wait()
        for vni in range(first_vni, first_vni + 10):
            try:
                db.change_intent(lambda d, v=vni: d["logical_switches"].append(
                    {"name": f"ls{v}", "vni": v, "subnet": f"10.{v % 256}.0.0/24"}))
            except Exception as e:       # noqa: BLE001 - any refusal fails the test below
                errors.append(e)
    threads = [threading.Thread(target=writer, args=(a, 6000)), threading.Thread(target=writer, args=(b, 6100))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    # a's replica may not have b's last commit yet: the database has it (every write verified the generation)
    wait_until(lambda: len(a.read()["intent"]["logical_switches"]) == 20, "a to see all 20 switches")
    snap = a.read()
    assert len(snap["intent"]["logical_switches"]) == 20 and snap["generation"] == generation + 20


def test_two_writers_racing_for_one_name_one_wins_the_other_is_refused_cleanly(clients):
    a, b = clients(), clients()
    start = threading.Barrier(2)
    outcome = {}

    def writer(db, vni):
        start.wait()
        try:
            db.change_intent(lambda d: d["logical_switches"].append({"name": "x", "vni": vni,
                                                                     "subnet": "10.1.1.0/24"}))
            outcome[vni] = "committed"
        except IntentError as e:
            outcome[vni] = str(e)
    threads = [threading.Thread(target=writer, args=(db, vni)) for db, vni in ((a, 7001), (b, 7002))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    [winner] = [vni for vni, what in outcome.items() if what == "committed"]
    [refusal] = [what for what in outcome.values() if what != "committed"]
    assert refusal == "logical_switches[1] 'x': name 'x' is already used"
    assert a.read()["intent"]["logical_switches"] == [{"name": "x", "vni": winner, "subnet": "10.1.1.0/24"}]


def test_a_client_follows_another_writers_changes(clients):
    changed = threading.Event()
    follower = clients(lambda table=None: changed.set())
    changed.clear()
    clients().change_intent(lambda d: d["logical_switches"].append(WEB))
    assert changed.wait(10)
    wait_until(lambda: follower.read()["intent"]["logical_switches"] == [WEB], "the follower to see the switch")


# --- rows written around the API -----------------------------------------------------------------------

def test_checked_intent_leaves_out_rows_that_break_a_rule_and_says_which(clients):
    db = clients()
    db.change_intent(lambda d: (d["logical_switches"].append(WEB), d["logical_ports"].append(
        {"name": "good", "switch": "web", "mac": "00:50:56:00:00:01", "ips": ["10.1.1.11"]})))

    def around_the_api(txn, tables):
        port = txn.insert(tables["Logical_Port"])
        port.name, port.switch, port.mac, port.ips = "bad", "nowhere", "00:50:56:00:00:02", ["10.1.1.12"]
        switch = txn.insert(tables["Logical_Switch"])
        switch.name, switch.vni, switch.subnet = "junk", 5002, "ten.one/24"
        next(iter(tables["Global"].rows.values())).vmac = "not-a-mac"
    db.transact(around_the_api)
    said = []
    intent = nbdb.checked_intent(db.read()["intent"], log=lambda fmt, *args: said.append(fmt % args))
    assert [s.name for s in intent.switches] == ["web"] and [p.name for p in intent.ports] == ["good"]
    assert intent.vmac == "02:50:56:56:44:52"
    assert len(said) == 3 and all(line.startswith("database: ") for line in said)
    assert any("'junk'" in line and "ignored" in line for line in said), said
    assert any("'bad'" in line and "unknown logical switch 'nowhere'" in line for line in said), said
    assert any("vmac 'not-a-mac'" in line for line in said), said


def test_a_row_that_breaks_a_rule_does_not_block_other_writes_and_an_exact_write_removes_it(clients):
    db = clients()
    db.change_intent(lambda d: d["logical_switches"].append(WEB))

    def around_the_api(txn, tables):
        port = txn.insert(tables["Logical_Port"])
        port.name, port.switch, port.mac = "bad", "nowhere", "00:50:56:00:00:02"
    db.transact(around_the_api)
    intent, summary = db.change_intent(lambda d: d["logical_ports"].append(
        {"name": "good", "switch": "web", "mac": "00:50:56:00:00:01"}))
    assert summary["created"] == ["logical port good"] and not summary["deleted"]
    assert sorted(p["name"] for p in db.read()["intent"]["logical_ports"]) == ["bad", "good"]
    _, summary = db.change_intent(lambda d: None, exact=True)
    assert summary["deleted"] == ["logical port bad"]
    assert [p["name"] for p in db.read()["intent"]["logical_ports"]] == ["good"]


def test_two_first_writers_on_a_new_database_commit_or_one_is_refused_cleanly(tmp_path):
    """Both make the Global row: the second may meet the first's (maxRows 1) and be refused
    as a conflict (the app answers 409), never half written."""
    with embedded_database(tmp_path / "db") as a:
        b = nbdb.NbClient(a.remote, lambda table=None: None)
        b.connect()
        try:
            start, outcome = threading.Barrier(2), {}

            def writer(db, name, vni):
                start.wait()
                try:
                    db.change_intent(lambda d: d["logical_switches"].append(
                        {"name": name, "vni": vni, "subnet": f"10.{vni % 256}.0.0/24"}))
                    outcome[name] = "committed"
                except RuntimeError as e:
                    outcome[name] = str(e)
            threads = [threading.Thread(target=writer, args=args) for args in ((a, "one", 6001), (b, "two", 6002))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            committed = sorted(n for n, what in outcome.items() if what == "committed")
            assert committed and all("constraint violation" in what for what in outcome.values() if what != "committed")
            wait_until(lambda: len(a.read()["intent"]["logical_switches"]) >= len(committed), "a to see every commit")
            snap = a.read()
            assert sorted(s["name"] for s in snap["intent"]["logical_switches"]) == committed
            assert snap["generation"] == len(committed)
        finally:
            b.close()


def test_a_connected_client_says_it_is_connected(clients):
    """The app asks every second (a handler that raised would end os-ken's event loop)."""
    assert clients().idl.is_connected() is True


def test_the_lab_names_the_database_as_the_controller_does():
    from mininet_topos.nbcluster import DB_NAME
    assert DB_NAME == nbdb.DB_NAME


def test_a_change_handler_that_waits_does_not_stop_the_client_reading_or_writing(clients):
    """The app's handler may block (its event queue is full) while the app's own thread waits
    for a read: the client must answer the read meanwhile, and tell the handler afterwards."""
    release, told = threading.Event(), []

    def waits(table=None):
        release.wait(30)
        told.append(table)
    db, other = clients(waits), clients()
    other.change_intent(lambda d: d["logical_switches"].append(WEB))
    wait_until(lambda: any(s["name"] == "web" for s in db.read()["intent"]["logical_switches"]),
               "the blocked client to read the change")
    db.change_intent(lambda d: d["logical_switches"].append({**WEB, "name": "app", "vni": 5002,
                                                             "subnet": "10.1.2.0/24"}))
    release.set()
    wait_until(lambda: "Logical_Switch" in told, "the handler to be told")
