"""The app's own events: what other threads (the database's IDL, OVSDB workers, the API,
timers) hand to the app's thread, which owns the model."""
from __future__ import annotations

import concurrent.futures

from os_ken.controller import event


class EventNbChanged(event.EventBase):
    pass


class EventTick(event.EventBase):
    pass


class EventRound(event.EventBase):
    pass


class EventLeases(event.EventBase):
    def __init__(self, leases):
        super().__init__()
        self.leases = leases


class EventLearnedChanged(event.EventBase):
    pass


class EventOvsdbChanged(event.EventBase):
    def __init__(self, address, snap):
        super().__init__()
        self.address, self.snap = address, snap


class EventOvsdbFailed(event.EventBase):
    def __init__(self, address, error):
        super().__init__()
        self.address, self.error = address, error


class EventSyncTimeout(event.EventBase):
    pass


class EventLiveness(event.EventBase):
    def __init__(self, at: float):
        super().__init__()
        self.at = at             # when it was posted: the app may get to it later


class EventTunnelsDone(event.EventBase):
    def __init__(self, hypervisor, error):
        super().__init__()
        self.hypervisor, self.error = hypervisor, error


class EventCall(event.EventBase):
    """Run `fn()` in the app's thread (the model's owner) and put the outcome in `future`."""
    def __init__(self, fn, future: concurrent.futures.Future):
        super().__init__()
        self.fn, self.future = fn, future


class EventReleaseHeld(event.EventBase):
    pass


class EventResolveTimeout(event.EventBase):
    def __init__(self, key):
        super().__init__()
        self.key = key
