"""The connection layer: a queue per hypervisor, so the app's thread never waits on one.

`Link` is one hypervisor's OpenFlow channel: the app puts messages (os-ken's, or bytes
already encoded) in its queue and goes
on; the link's own green thread hands them to os-ken (whose send queue blocks when the
socket is slow). `OvsdbWorker` is one hypervisor's OVSDB session in a thread: reads and
the tunnel-port writes wanted for it go into its queue, batched (one read for many
changes, one transaction for the newest wanted set), and the outcomes come back as
callbacks that the app turns into events for its thread. What to send is decided
elsewhere (reconcile.py, dispatch.py).
"""
from __future__ import annotations

import logging
import queue
import threading

from os_ken.lib import hub

from controller.ovsdb import REMOTE_KEY, HypervisorDB
from controller.reconcile import TunnelUpdate
from controller.tables import TABLE_NAMES

LOG = logging.getLogger(__name__)


class Link:
    def __init__(self, dp):
        self.dp = dp
        self._queue = hub.Queue()
        self.sent = 0
        self._thread = hub.spawn(self._run)

    def send(self, messages: list) -> None:
        for m in messages:
            self._queue.put(m)

    def _run(self):
        while True:
            msg = self._queue.get()
            if msg is None:
                return
            try:
                if isinstance(msg, bytes):      # already encoded (openflow.bundle_bytes)
                    self.dp.send(msg)
                else:
                    self.dp.send_msg(msg)
                self.sent += 1
            except Exception as e:          # a dead socket: the disconnect event follows
                LOG.warning("OpenFlow %016x: send failed: %s", self.dp.id or 0, e)

    def close(self) -> None:
        self._queue.put(None)


class OvsdbWorker:
    """One hypervisor's OVSDB, in a thread of its own (python-ovs blocks): it connects,
    reads a snapshot whenever the database changed (many changes, one read), and writes
    the tunnel ports wanted (only the newest wanted set, one transaction). Outcomes come
    back through the callbacks, which post events to the app's thread."""
    def __init__(self, db: HypervisorDB, on_snapshot, on_tunnels, on_error):
        self.db = db
        db.on_change = self.read         # the IDL's thread only queues a read for this worker's thread
        self._on_snapshot, self._on_tunnels, self._on_error = on_snapshot, on_tunnels, on_error
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._read_queued = False
        self.transactions = 0
        self._thread = threading.Thread(target=self._run, name=f"ovsdb-{db.address}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def read(self) -> None:
        """(Any thread) the database changed: read it once more."""
        with self._lock:
            if self._read_queued:
                return
            self._read_queued = True
        self._queue.put("read")

    def tunnels(self, hypervisor: str, update: TunnelUpdate) -> None:
        self._queue.put((hypervisor, update))

    def close(self) -> None:
        self._queue.put(None)

    def _run(self):
        try:
            self.db.connect()
        except ConnectionError as e:
            self._on_error(self.db.address, e)
            return
        LOG.info("OVSDB: connected to %s", self.db.target)
        self.db.set_table_names(TABLE_NAMES)
        self.read()
        while True:
            job = self._queue.get()
            if job is None:
                self.db.close()
                return
            if job == "read":
                with self._lock:
                    self._read_queued = False
                try:
                    self._on_snapshot(self.db.address, self.db.snapshot())
                except Exception as e:          # disconnected meanwhile: liveness says so
                    LOG.warning("OVSDB %s: read failed: %s", self.db.target, e)
                continue
            hypervisor, update = job
            latest = {}
            while True:                          # only the newest wanted set matters
                latest[hypervisor] = update
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, tuple):
                    self._queue.put(nxt)
                    break
                hypervisor, update = nxt
            for hypervisor, update in latest.items():
                try:
                    present = {i.name: i for i in self.db.snapshot().interfaces if i.external_ids.get(REMOTE_KEY)}
                    self.db.set_tunnels(update.wanted, present)
                    self.transactions += 1
                    self._on_tunnels(hypervisor, None)
                except Exception as e:           # one hypervisor's OVSDB trouble stops no other
                    self._on_tunnels(hypervisor, e)
