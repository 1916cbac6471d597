"""The connection layer's OVSDB worker: what the IDL's thread may do (hand the news on)."""
from types import SimpleNamespace

from controller.connection import OvsdbWorker


def test_a_database_change_only_queues_one_read_for_the_workers_thread():
    """The IDL's thread calls on_change for every change it parses: that only queues a read
    (many changes, one read), touching nothing of the app's; the worker's own thread reads."""
    snapshots = []
    db = SimpleNamespace(address="169.254.78.2", on_change=None, snapshot=lambda: "snapshot")
    worker = OvsdbWorker(db, lambda address, snap: snapshots.append((address, snap)), None, None)
    for _ in range(5):
        db.on_change()
    assert worker._queue.qsize() == 1 and snapshots == []
    worker._queue.put(None)                  # then stop
    db.close = lambda: None
    db.connect = lambda: None
    db.target = "tcp:169.254.78.2:6640"
    db.set_table_names = lambda names: None
    worker._run()                            # (in the caller's thread here)
    assert snapshots == [("169.254.78.2", "snapshot")]
