"""The one place that talks OVSDB: a connection to one hypervisor's ovsdb-server.

Through it the controller reads who the hypervisor is (system-id, VTEP IP), the VM
ports on br-int (their external_ids), and its own tunnel ports; and it writes the
tunnel ports it wants. ovsdbapp runs the connection in its own thread; changes are
reported by calling `on_change()` from that thread, which must only hand the news on
(connection.OvsdbWorker queues a read for its own thread: the IDL's thread never waits on
the app, nor touches its state).
"""
from __future__ import annotations

import dataclasses
import logging
import time

from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.backend.ovs_idl import transaction as idl_transaction
from ovsdbapp.schema.open_vswitch import impl_idl

LOG = logging.getLogger(__name__)
OVSDB_PORT = 6640
PROBE_INTERVAL = 1000    # ms: an idle connection is probed after this; no answer in as long: down
PROBE_PER = 50           # hypervisors: one more PROBE_INTERVAL for each this many (probe_interval_ms)
RECONNECT_BACKOFF = (250, 1000)   # ms: first and longest wait between reconnection attempts
BR_INT = "br-int"
TUNNEL_PREFIX = "vx-"
REMOTE_KEY = "packetwalk-remote"     # external_ids key on the tunnel ports the controller made
_WATCHED = ("Open_vSwitch", "Interface", "Port", "Bridge")
# The columns the controller reads or writes (ovsdbapp's add/del-port and its wait for
# ovs-vswitchd included), and no others: the server then sends no statistics, status or
# link state, which ovs-vswitchd rewrites every few seconds on every interface (at 200
# hypervisors of ~100 interfaces each, thousands of rows a second for the IDLs to parse)
_COLUMNS = {
    "Open_vSwitch": ["bridges", "external_ids", "next_cfg", "cur_cfg"],
    "Bridge": ["name", "ports", "datapath_id", "flow_tables"],
    "Port": ["name", "interfaces"],
    "Interface": ["name", "ofport", "type", "external_ids", "options", "bfd", "bfd_status"],
    "Flow_Table": ["name"],
}
_RELEVANT = {"name", "ofport", "type", "external_ids", "options", "ports", "interfaces"}
# BFD on every tunnel port: at most this many BFD packets a second from one hypervisor, and
# never more often than BFD_FASTEST_MS per tunnel (a mesh of N hypervisors sends N * (N - 1)
# a second in all; at 500 ms, 64 hypervisors' 4,032 tunnel ends took both of the lab
# machine's cores)
BFD_PACKETS_PER_S = 30
BFD_FASTEST_MS, BFD_SLOWEST_MS = 500, 10_000


@dataclasses.dataclass(frozen=True)
class Interface:
    name: str
    ofport: int
    type: str
    external_ids: dict
    options: dict
    bfd_status: dict
    bfd: dict = dataclasses.field(default_factory=dict)      # its BFD settings


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What one read of a hypervisor's OVSDB says."""
    system_id: str | None
    vtep_ip: str | None
    dpid: int | None                        # br-int's datapath ID (what its OpenFlow connection says)
    interfaces: tuple[Interface, ...]       # ports on br-int only

    def split(self, iface_id_key: str) -> tuple[dict, dict, dict]:
        """(VM interfaces: name -> (ofport, iface-id); tunnel ports: remote -> ofport, for
        those OVS numbered; tunnels' BFD state: remote -> state)."""
        interfaces, tunnels, state = {}, {}, {}
        for iface in self.interfaces:
            remote = iface.external_ids.get(REMOTE_KEY)
            if remote:
                state[remote] = iface.bfd_status.get("state", "unknown")
                if iface.ofport > 0:
                    tunnels[remote] = iface.ofport
            elif iface.external_ids.get(iface_id_key):
                interfaces[iface.name] = (iface.ofport, iface.external_ids[iface_id_key])
        return interfaces, tunnels, state


class _NotifyingIdl(connection.OvsdbIdl):
    on_change = None
    _bfd_seen: dict | None = None      # interface row -> its BFD state last told

    def notify(self, event, row, updates=None):
        """Tell the controller about changes it reads; not about the statistics and status
        columns ovs-vswitchd rewrites every few seconds (a tunnel's BFD status: only when
        its state changes, not its counters)."""
        if not self.on_change or row._table.name not in _WATCHED:
            return
        changed = set(getattr(updates, "_data", None) or ()) if event == "update" else None
        if changed is None or changed & _RELEVANT or not changed or (
                "bfd_status" in changed and self._bfd_changed(row)):
            self.on_change()

    def _bfd_changed(self, row) -> bool:
        """Whether a tunnel's BFD state is not the one last seen (its counters change often)."""
        if self._bfd_seen is None:
            self._bfd_seen = {}
        state = _bfd_state(row)
        if self._bfd_seen.get(row.uuid) == state:
            return False
        self._bfd_seen[row.uuid] = state
        return True


class _NoWait(impl_idl.OvsVsctlTransaction):
    """ovs-vsctl's transaction without its wait (up to the timeout, in the worker's thread)
    for ovs-vswitchd to take the new configuration in: the tunnel ports' numbers come back
    through the monitor like any other change."""

    def post_commit(self, txn):
        idl_transaction.Transaction.post_commit(self, txn)


def _bfd_state(row) -> str | None:
    try:
        return dict(row.bfd_status).get("state")
    except Exception:         # noqa: BLE001  a row without the column (not an interface)
        return None


def bfd_interval_ms(tunnels: int) -> int:
    """The BFD interval of each of a hypervisor's `tunnels` tunnel ports (see BFD_PACKETS_PER_S)."""
    return max(BFD_FASTEST_MS, min(BFD_SLOWEST_MS, -(-tunnels * 1000 // BFD_PACKETS_PER_S)))


class HypervisorDB:
    def __init__(self, address: str, on_change=None, timeout: float = 10.0, scheme: str = "tcp"):
        self.address = address
        self.target = f"{scheme}:{address}:{OVSDB_PORT}"
        self.on_change = on_change       # set before connect(); called from the IDL's thread
        self.probe_ms = PROBE_INTERVAL
        self._timeout = timeout
        self.api = None

    def connect(self, deadline: float = 30.0) -> None:
        """Blocking: fetch the schema and sync the database, retrying until `deadline` s."""
        give_up = time.monotonic() + deadline
        while True:
            try:
                helper = idlutils.get_schema_helper(self.target, "Open_vSwitch")
                for table, columns in _COLUMNS.items():
                    helper.register_columns(table, columns)
                idl = _NotifyingIdl(self.target, helper, probe_interval=self.probe_ms)
                break
            except Exception as e:   # the server may not listen yet: retry until the deadline
                if time.monotonic() > give_up:
                    raise ConnectionError(f"OVSDB {self.target}: {e}") from e
                time.sleep(0.2)
        idl.on_change = self.on_change
        idl._session.reconnect.set_backoff(RECONNECT_BACKOFF[0], RECONNECT_BACKOFF[1])   # back soon after a restart
        # ovsdbapp keeps one connection per API *class*: give each hypervisor a class of its own
        api_class = type(f"OvsdbIdl_{self.address}", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
        self.api = api_class(connection.Connection(idl=idl, timeout=self._timeout))

    def set_probe_interval(self, ms: int) -> None:
        """(The app's thread) python-ovs keeps the interval in one attribute of the session's
        reconnect state, read by the IDL's thread at its next step."""
        self.probe_ms = ms
        if self.api is not None:
            self.api.idl._session.reconnect.set_probe_interval(ms)

    def close(self) -> None:
        if self.api is not None:
            self.api.ovsdb_connection.stop()
            self.api = None

    @property
    def connected(self) -> bool:
        """The session is up (a dead server, or one that stopped answering probes: False)."""
        return self.api is not None and self.api.idl._session.is_connected()

    def snapshot(self) -> Snapshot:
        ext = self.api.db_get("Open_vSwitch", ".", "external_ids").execute(check_error=True)
        dpid = self.api.db_get("Bridge", BR_INT, "datapath_id").execute(check_error=False)
        names = set(self.api.list_ifaces(BR_INT).execute(check_error=True) or ())
        rows = self.api.db_list("Interface", columns=["name", "ofport", "type", "external_ids",
                                                      "options", "bfd_status", "bfd"]).execute(check_error=True)
        ifaces = tuple(Interface(r["name"], _ofport(r["ofport"]), r["type"], dict(r["external_ids"]),
                                 dict(r["options"]), dict(r["bfd_status"]), dict(r["bfd"]))
                       for r in rows if r["name"] in names)
        return Snapshot(ext.get("system-id"), ext.get("vtep-ip"), _dpid(dpid), ifaces)

    def set_table_names(self, names: dict[int, str]) -> None:
        """Name br-int's flow tables: a Flow_Table row per table, referenced from the bridge's
        flow_tables, in one transaction (the rows are not root: they live while referenced).
        Nothing is written if the names are there already. A failure is logged, not raised:
        names are for people, forwarding does not need them."""
        try:
            have = self.api.db_get("Bridge", BR_INT, "flow_tables").execute(check_error=True) or {}
            named = {row["_uuid"]: row["name"] for row in
                     self.api.db_list("Flow_Table", columns=["_uuid", "name"]).execute(check_error=True)}
            if all(named.get(have.get(n)) in ([name], name) for n, name in names.items()):
                return
            with self.api.transaction(check_error=True) as txn:
                rows = {n: txn.add(self.api.db_create("Flow_Table", name=name)) for n, name in names.items()}
                txn.add(self.api.db_set("Bridge", BR_INT, ("flow_tables", {**have, **rows})))
        except Exception as e:      # noqa: BLE001  (ovsdbapp raises its own and RuntimeError)
            LOG.warning("OVSDB %s: br-int's table names not written: %s", self.target, e)

    def set_tunnels(self, wanted: dict[str, str], present: dict[str, Interface]) -> None:
        """Make br-int's tunnel ports exactly `wanted` (remote hypervisor -> VTEP IP):
        one VXLAN port per remote VTEP, tunnel key from the flow, BFD on (it keeps the
        remote VTEP's MAC resolved and tells whether the tunnel is up), slower the more
        tunnels the hypervisor has (bfd_interval_ms)."""
        interval = str(bfd_interval_ms(len(wanted)))
        bfd = {"enable": "true", "min_tx": interval, "min_rx": interval}
        conn = self.api.ovsdb_connection
        with _NoWait(self.api, conn, conn.timeout, check_error=True) as txn:
            for remote, ip in wanted.items():
                name = tunnel_port_name(remote)
                have = present.get(name)
                options = {"remote_ip": ip, "key": "flow"}
                if have:
                    if have.options.get("remote_ip") != ip:
                        txn.add(self.api.db_set("Interface", name, ("options", options)))
                    if have.bfd != bfd:
                        txn.add(self.api.db_set("Interface", name, ("bfd", bfd)))
                    continue
                txn.add(self.api.add_port(BR_INT, name, may_exist=True))
                txn.add(self.api.db_set("Interface", name, ("type", "vxlan"), ("options", options),
                                        ("bfd", bfd), ("external_ids", {REMOTE_KEY: remote})))
            for name, iface in present.items():
                if iface.external_ids.get(REMOTE_KEY) not in wanted:
                    txn.add(self.api.del_port(name, bridge=BR_INT, if_exists=True))


def probe_interval_ms(hypervisors: int) -> int:
    """The OVSDB probe interval with this many hypervisors: 1 s up to 50, one more second per
    50 more (4 s at 200). A server that dies closes its connection and is noticed at once
    whatever the interval; the probe only catches a hung one. With hundreds of sessions on
    a loaded machine, an IDL thread that gets no CPU for a second finds its probe timed out
    before it reads the reply waiting in its socket (python-ovs judges before it reads):
    the hypervisor went DOWN and up again, and was read and re-planned, for nothing."""
    return PROBE_INTERVAL * max(1, -(-hypervisors // PROBE_PER))


def tunnel_port_name(remote_hypervisor: str) -> str:
    return TUNNEL_PREFIX + remote_hypervisor


def _ofport(value) -> int:
    if isinstance(value, list):          # an unset optional column reads as []
        value = value[0] if value else -1
    return int(value)


def _dpid(value) -> int | None:
    if isinstance(value, list):          # unset: []
        value = value[0] if value else None
    try:
        return int(value, 16) if value else None
    except (TypeError, ValueError):
        return None
