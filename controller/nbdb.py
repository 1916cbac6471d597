"""The controller's own database: intent and what controllers learn, in ovsdb-server.

Embedded by default: `EmbeddedServer` keeps the database file in --db-dir (created with
ovsdb-tool on first start, converted on a schema upgrade, refused with a clear message if
it is damaged or foreign), serves it on a unix socket, and dies with the controller.
Clustered: the controller is given the servers (--nb tcp:A:P,tcp:B:P,tcp:C:P; a Raft
cluster made with ovsdb-tool create-cluster / join-cluster) and talks to the leader.

`NbClient` follows the database through a python-ovs IDL (in ovsdbapp's thread); it calls
`on_change(table)` from a thread of its own (never the IDL's) when any writer changes it. Reads are consistent snapshots;
every intent write is one transaction that re-checks the whole intent and bumps
Global.generation after verifying it, so two writers racing serialise cleanly: the second
is re-run on the first one's result (and refused if it no longer holds).
"""
from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from ovs.db import idl as ovs_idl
from ovsdbapp import api as ovsdbapp_api
from ovsdbapp import exceptions as ovsdb_exceptions
from ovsdbapp.backend import ovs_idl as backend
from ovsdbapp.backend.ovs_idl import command, connection

from controller.intent import Intent, IntentError, parse_intent

LOG = logging.getLogger(__name__)
SCHEMA = Path(__file__).with_name("packetwalk.ovsschema")
DB_NAME = "Packetwalk"
DB_FILE = "packetwalk.db"
INTENT_TABLES = ("Global", "Logical_Switch", "Logical_Port", "Logical_Router", "Static_Binding")
LEARNED_TABLES = ("Hypervisor", "Learned_Binding", "Port_Status", "Controller")


class DatabaseError(RuntimeError):
    """The database cannot be used; str() names the file or server and what is wrong."""


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ovsdb-tool", *args], capture_output=True, text=True)


class EmbeddedServer:
    """ovsdb-server on a standalone file in `db_dir`, a child of this process."""

    def __init__(self, db_dir: str | os.PathLike):
        self.dir = Path(db_dir)
        self.file = self.dir / DB_FILE
        self.socket = self.dir / "packetwalk.sock"
        self.remote = f"unix:{self.socket}"
        self.proc: subprocess.Popen | None = None

    def prepare(self) -> str:
        """Create, check or convert the database file; say what was done."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatabaseError(f"--db-dir {self.dir}: cannot create it: {e.strerror or e}") from None
        if not self.file.exists():
            r = _tool("create", str(self.file), str(SCHEMA))
            if r.returncode:
                raise DatabaseError(f"{self.file}: cannot create: {r.stderr.strip()}")
            return f"created {self.file}"
        name = _tool("db-name", str(self.file))
        if name.returncode:
            raise DatabaseError(f"{self.file}: not a database ovsdb-tool can read "
                                f"({name.stderr.strip().split(': ', 1)[-1]}); left as it is")
        if name.stdout.strip() != DB_NAME:
            raise DatabaseError(f"{self.file}: holds the database {name.stdout.strip()!r}, not packetwalk's "
                                f"({DB_NAME!r}); left as it is: point --db-dir elsewhere")
        if _tool("db-is-clustered", str(self.file)).returncode == 0:
            raise DatabaseError(f"{self.file}: is a clustered database: give its servers with --nb instead")
        whole = _tool("query", str(self.file), f'["{DB_NAME}"]')    # reads every record, read-only
        if whole.returncode:       # ovsdb-server would drop the damaged records without a word
            raise DatabaseError(f"{self.file}: damaged ({whole.stderr.strip().split(': ', 1)[-1]}); left as it is: "
                                "restore a copy, or move it aside to start with an empty database")
        have, want = _tool("db-version", str(self.file)).stdout.strip(), _tool("schema-version", str(SCHEMA)).stdout.strip()
        if have == want:
            return f"using {self.file} (schema {have})"
        if _version(have) > _version(want):
            raise DatabaseError(f"{self.file}: schema {have} is newer than this controller's {want}; left as it is")
        backup = self.file.with_name(f"{DB_FILE}.{have}.bak")
        shutil.copy2(self.file, backup)
        r = _tool("convert", str(self.file), str(SCHEMA))
        if r.returncode:
            raise DatabaseError(f"{self.file}: cannot convert schema {have} to {want}: {r.stderr.strip()} "
                                f"(the file before conversion is {backup})")
        return f"converted {self.file} from schema {have} to {want} (previous file kept as {backup})"

    def start(self, timeout: float = 10.0) -> None:
        self.socket.unlink(missing_ok=True)
        console = self.dir / "ovsdb-server.console"     # a file, never a pipe: nobody reads it while it runs
        with open(console, "wb") as out:
            self.proc = subprocess.Popen(
                ["ovsdb-server", str(self.file), f"--remote=punix:{self.socket}",
                 f"--unixctl={self.dir / 'ovsdb-server.ctl'}", f"--pidfile={self.dir / 'ovsdb-server.pid'}",
                 "--no-chdir"], stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.proc.poll() is not None:
                err = console.read_text(errors="replace").strip()
                raise DatabaseError(f"{self.file}: ovsdb-server refused it: {err or 'exit ' + str(self.proc.returncode)}"
                                    "; left as it is")
            if time.monotonic() > deadline:
                self.stop()
                raise DatabaseError(f"{self.file}: ovsdb-server did not listen on {self.socket} within {timeout:.0f} s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".")) if text else (0,)


def _die_with_parent():
    """prctl(PR_SET_PDEATHSIG, SIGTERM): the embedded server goes when the controller goes,
    even on kill -9."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class _Idl(ovs_idl.Idl):
    on_change = None

    def is_connected(self) -> bool:
        """python-ovs's Idl (3.1, Debian 12's) has no is_connected(); its session does."""
        return self._session.is_connected()

    def notify(self, event, row, updates=None):
        if self.on_change:
            self.on_change(row._table.name)


class _Handoff:
    """Calls `fn(table)` for each table that changed, on a thread of its own: the IDL's
    thread only notes the table and goes on. It must never wait for the app: the app's
    event queue is bounded (a full one blocks its sender), and the app's thread may itself
    be waiting for the IDL's thread (a read): both would wait until the read timed out, and
    meanwhile a TCP server drops the silent session (its 5 s inactivity probe)."""

    def __init__(self, fn):
        self.fn, self._pending, self._cv = fn, set(), threading.Condition()
        threading.Thread(target=self._run, name="nb-changes", daemon=True).start()

    def __call__(self, table: str) -> None:
        with self._cv:
            self._pending.add(table)
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending:
                    self._cv.wait()
                tables, self._pending = self._pending, set()
            for table in sorted(tables):
                try:
                    self.fn(table)
                except Exception:
                    LOG.exception("database: handling a change of %s", table)


class _Run(command.BaseCommand):
    """Run fn(txn, tables) in the IDL's thread, as (part of) one transaction."""

    def __init__(self, api, fn, read_only=False):
        super().__init__(api)
        self.fn = fn
        self.READ_ONLY = read_only

    def run_idl(self, txn):
        self.result = self.fn(txn, self.api.tables)


class NbClient:
    """The controller's connection to its database (one server or a Raft cluster)."""

    def __init__(self, remote: str, on_change, timeout: float = 10.0):
        self.remote = remote
        helper = ovs_idl.SchemaHelper(location=str(SCHEMA))
        helper.register_all()
        self.idl = _Idl(remote, helper, leader_only=True, probe_interval=1000)
        self.idl._session.reconnect.set_backoff(100, 500)    # a new Raft leader is found in well under a second
        self.idl.on_change = _Handoff(on_change) if on_change else None
        api_class = type("NbApi", (backend.Backend, ovsdbapp_api.API), {"ovsdb_connection": None})
        self.api = api_class(connection.Connection(self.idl, timeout), start=False, auto_index=False)
        self.connected = threading.Event()

    def connect(self, retry_log=LOG.warning) -> None:
        """Block until the database is reachable and read; say once that it is not."""
        said = False
        while True:
            try:
                self.api.ovsdb_connection.start()
                break
            except Exception as e:       # ovsdbapp raises its TimeoutException, or the socket's error
                if not said:
                    why = "no answer in time" if isinstance(e, ovsdb_exceptions.TimeoutException) else e
                    retry_log("database %s unreachable (%s): retrying until it answers", self.remote, why)
                    said = True
        if said:
            LOG.warning("database %s: reachable again", self.remote)
        self.connected.set()

    def close(self) -> None:
        self.api.ovsdb_connection.stop(timeout=2)

    # --- reading -------------------------------------------------------------------------
    def read(self) -> dict:
        """A consistent snapshot: intent (as a dict, unchecked), generation, learned rows."""
        return self.look(lambda t: snapshot(t))

    def look(self, fn):
        """fn(tables) in the IDL's thread, reading one consistent state; its result."""
        return _Run(self.api, lambda txn, t: fn(t), read_only=True).execute(check_error=True)

    # --- writing -------------------------------------------------------------------------
    def change_intent(self, edit, exact: bool = False) -> tuple[Intent, dict]:
        """Apply `edit(intent_dict)` to the current intent, check the whole result, write the
        difference and bump the generation, in one transaction. Returns (intent, summary of
        created/changed/deleted). IntentError (or the edit's own error) commits nothing.
        Rows that break a rule (written around the API) are not part of the current intent
        and are left as they are, unless `exact` (the whole intent is given: they go)."""
        def run(txn, tables):
            current = checked_intent(snapshot(tables)["intent"], log=lambda *a: None)
            wanted = _copy(current.to_dict())
            edit(wanted)
            intent = parse_intent(wanted)
            summary = write_intent(txn, tables, intent, None if exact else current)
            g = _global_row(txn, tables)
            g.verify("generation")
            g.generation = g.generation + 1 if summary_changed(summary) else g.generation
            return intent, summary
        return _Run(self.api, run).execute(check_error=True, log_errors=False)

    def ensure_global(self) -> None:
        """The Global row, made once (a fresh cluster has none), so writers never race to make it."""
        for _ in range(3):
            try:
                return self.transact(lambda txn, t: _global_row(txn, t) and None)
            except RuntimeError:        # another controller made it at the same moment
                continue

    def transact(self, fn):
        """Run fn(txn, tables) as one transaction (learned tables: the controller's writes)."""
        return _Run(self.api, fn).execute(check_error=True, log_errors=False)


def _copy(d: dict) -> dict:
    return {k: [dict(x) for x in v] if isinstance(v, list) else v for k, v in d.items()}


def summary_changed(summary: dict) -> bool:
    return any(summary.values())


# --- rows <-> intent -------------------------------------------------------------------------

def snapshot(tables) -> dict:
    g = next(iter(tables["Global"].rows.values()), None)
    intent = {
        "vmac": g.vmac if g else None,
        "arp_suppression": g.arp_suppression if g else True,
        "logical_switches": [{"name": r.name, "vni": r.vni, "subnet": r.subnet}
                             for r in _sorted(tables["Logical_Switch"])],
        "logical_ports": [{"name": r.name, "switch": r.switch, "mac": r.mac, "ips": sorted(r.ips),
                           "learn": r.learn, "trusted": r.trusted} for r in _sorted(tables["Logical_Port"])],
        "logical_routers": [{"name": r.name,
                             "interfaces": [{"switch": s, "ip": ip} for s, ip in sorted(r.interfaces.items())],
                             "routes": [{"prefix": p, "next_hop": h} for p, h in sorted(r.routes.items())]}
                            for r in _sorted(tables["Logical_Router"])],
        "static_bindings": [{"switch": r.switch, "ip": r.ip, "mac": r.mac}
                            for r in sorted(tables["Static_Binding"].rows.values(), key=lambda r: (r.switch, r.ip))],
    }
    return {
        "intent": intent,
        "generation": g.generation if g else 0,
        "learned_bindings": [{"switch": r.switch, "ip": r.ip, "mac": r.mac, "port": r.port,
                              "learned_at": r.learned_at} for r in tables["Learned_Binding"].rows.values()],
        "hypervisors": {r.name: {c: getattr(r, c) for c in ("vtep_ip", "address", "dpid", "openflow", "ovsdb",
                                                             "last_seen", "controller", "lease_until",
                                                             "role_generation")}
                        for r in tables["Hypervisor"].rows.values()},
        "controllers": {r.name: {"address": r.address, "api": r.api, "renewed": r.renewed}
                        for r in tables["Controller"].rows.values()},
        "port_status": {r.port: {"up": r.up, "hypervisor": r.hypervisor, "interface": r.interface,
                                 "since": r.since} for r in tables["Port_Status"].rows.values()},
    }


def _sorted(table):
    return sorted(table.rows.values(), key=lambda r: r.name)


def _global_row(txn, tables):
    g = next(iter(tables["Global"].rows.values()), None)
    if g is None:
        g = txn.insert(tables["Global"])
        g.vmac, g.arp_suppression, g.generation = Intent().vmac, True, 0
    return g


def _rows_wanted(intent: Intent) -> dict[str, dict[object, dict]]:
    """Per table: key -> column values, as the intent wants them."""
    return {
        "Logical_Switch": {s.name: {"name": s.name, "vni": s.vni, "subnet": str(s.subnet)} for s in intent.switches},
        "Logical_Port": {p.name: {"name": p.name, "switch": p.switch, "mac": p.mac, "ips": sorted(p.ips),
                                  "learn": p.learn, "trusted": p.trusted} for p in intent.ports},
        "Logical_Router": {r.name: {"name": r.name, "interfaces": {i.switch: str(i.ip) for i in r.interfaces},
                                    "routes": {str(rt.prefix): str(rt.next_hop) for rt in r.routes}}
                           for r in intent.routers},
        "Static_Binding": {(b.switch, str(b.ip)): {"switch": b.switch, "ip": str(b.ip), "mac": b.mac}
                           for b in intent.static_bindings},
    }


_NOUN = {"Logical_Switch": "logical switch", "Logical_Port": "logical port", "Logical_Router": "logical router",
         "Static_Binding": "static binding"}


def _label(table: str, key) -> str:
    return f"{_NOUN[table]} {'/'.join(key) if isinstance(key, tuple) else key}"


def write_intent(txn, tables, intent: Intent, current: Intent | None = None) -> dict:
    """Make the intent tables hold `intent`; say what was created, changed, deleted. Given the
    `current` intent, only its rows may be deleted (others are left to whoever wrote them)."""
    summary = {"created": [], "changed": [], "deleted": []}
    g = _global_row(txn, tables)
    if (g.vmac, g.arp_suppression) != (intent.vmac, intent.arp_suppression):
        g.vmac, g.arp_suppression = intent.vmac, intent.arp_suppression
        summary["changed"].append("settings")
    known = _rows_wanted(current) if current else {}
    for table, wanted in _rows_wanted(intent).items():
        for what, keys in sync_table(txn, tables, table, wanted, known.get(table)).items():
            summary[what] += [_label(table, k) for k in keys]
    return summary


_KEYS = {"Static_Binding": ("switch", "ip"), "Learned_Binding": ("switch", "ip"), "Port_Status": ("port",)}


def _key(table: str, row):
    cols = _KEYS.get(table, ("name",))
    return tuple(getattr(row, c) for c in cols) if len(cols) > 1 else getattr(row, cols[0])


def sync_table(txn, tables, table: str, wanted: dict, deletable=None) -> dict[str, list]:
    """Make `table` hold exactly `wanted` (key -> column values): only the difference is
    written; rows not wanted are deleted (only those in `deletable`, if it is given)."""
    done = {"created": [], "changed": [], "deleted": []}
    present = {_key(table, r): r for r in tables[table].rows.values()}
    for key, row in present.items():
        if key not in wanted and (deletable is None or key in deletable):
            row.delete()
            done["deleted"].append(key)
    for key, columns in wanted.items():
        row = present.get(key)
        if row is None:
            row = txn.insert(tables[table])
            done["created"].append(key)
        elif all(_same(getattr(row, c), v) for c, v in columns.items()):
            continue
        else:
            done["changed"].append(key)
        for c, v in columns.items():
            setattr(row, c, v)
    return done


class Reporter:
    """Writes what this controller learned and sees (learned bindings, hypervisors, port
    status) off the app's thread: the app hands over its whole view as plain dicts, a
    thread writes the difference; a newer view replaces one not yet written. Only rows it
    reported itself are ever deleted (other controllers report theirs); Hypervisor rows are
    made by the lease that gives a controller the hypervisor, and only updated here."""

    def __init__(self, client: NbClient):
        self.client = client
        self._view = None
        self._written: dict[str, set] = {}        # table -> keys this controller reported
        self._lock = threading.Lock()
        self._wake = threading.Event()
        threading.Thread(target=self._run, name="nb-reporter", daemon=True).start()

    def _write(self, txn, tables, view):
        for table, rows in view.items():
            if table == "Hypervisor":
                present = {r.name: r for r in tables[table].rows.values()}
                for name, columns in rows.items():
                    if name in present:
                        for c, v in columns.items():
                            setattr(present[name], c, v)
            else:
                sync_table(txn, tables, table, rows, self._written.get(table, set()))

    def report(self, view: dict[str, dict]) -> None:
        with self._lock:
            self._view = view
        self._wake.set()

    def _run(self):
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                view, self._view = self._view, None
            if view is None:
                continue
            self.client.connected.wait()
            try:
                self.client.transact(lambda txn, t: self._write(txn, t, view))
                self._written = {table: set(rows) for table, rows in view.items()}
            except Exception as e:       # the database is away or busy: try again with the newest view
                LOG.warning("database: could not record the controller's view (%s): retrying", e)
                with self._lock:
                    self._view = self._view or view
                time.sleep(1.0)
                self._wake.set()


def _same(have, want) -> bool:
    if isinstance(want, list):
        return sorted(have) == want
    return have == want


def checked_intent(d: dict, log=LOG.error) -> Intent:
    """The intent a database holds, as the controller will use it: rows that break a rule
    (written around the API, e.g. with ovsdb-client) are left out and reported."""
    d = _copy(d)
    while True:
        try:
            return parse_intent(d)
        except IntentError as e:
            section, _, rest = e.item.partition("[")
            if section not in d or not rest[:1].isdigit():
                log("database: %s: ignoring the settings", e)
                d["vmac"], d["arp_suppression"] = None, True
                continue
            index = int(rest.split("]")[0])
            log("database: %s: that row is ignored until it is mended", e)
            del d[section][index]
