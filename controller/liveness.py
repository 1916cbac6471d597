"""OpenFlow liveness, pure: which switches to ask (echo requests) and which to call dead,
telling a dead switch from a busy one, and from a controller that is itself behind.

os-ken's own echo loop counts unanswered requests: under load (hundreds of hypervisors
being programmed on a few cores) a switch applying a large bundle answers late, the
controller drops it, reads it again, programs it again: a reconnection spiral. Here:

- `now` is when the app's liveness tick was *posted*, not when the app got to it. The app
  handles events in order, so every reply that arrived before the tick has been taken in
  (`heard`) when the tick is handled: time the app spent behind never counts against a
  switch;
- a tick the app got to more than BEHIND s after it was posted calls nobody dead: its queue
  was long, and a switch's reply may be waiting to get into it behind the tick;
- when more than MASS of the switches are silent at once, the cause is this machine or this
  controller (CPU, its own network), not each of them: nobody is called dead then. Silent
  here is half the limit: a starved machine's switches go silent together but cross the
  limit a few at a time, each tick fewer than MASS (200 switches at load 40-50: 118 closed,
  16 a tick, then re-read and re-planned, and the controller drowned in it);
- a switch is dead when nothing came from it (an echo reply, a bundle's commit reply, any
  message the app handles) for DEAD_AFTER s while an echo request was outstanding (one
  more DEAD_AFTER per 50 switches beyond 50: 8 s at 200, where a thousand receiving threads
  share one interpreter and 30-50 idle switches at a time went 3-5 s unheard at load 10-16;
  a switch whose ovs-vswitchd dies closes its connection and is gone at once anyway); while it
  has updates of ours unconfirmed (it is applying them, and answers after them), for
  BUSY_DEAD_AFTER s; and for DEAD_AFTER + AFTER_BUSY s in the AFTER_BUSY s after its last
  update was confirmed (an ovs-vswitchd that just took 1,650 flows goes on revalidating its
  datapath flows: at 200 x 5,000, load 10, 39 switches were closed 2-4 s after the cold
  start's last plan, each then re-read and re-planned).

Nothing here sends or reads a clock: the app sends the requests and closes the dead.
"""
from __future__ import annotations

ECHO_INTERVAL = 0.5        # s between echo requests to a switch
DEAD_AFTER = 2.0           # s of silence, an echo outstanding: dead (a hung ovs-vswitchd: ~2 s)
BUSY_DEAD_AFTER = 30.0     # s of silence while our updates to it are unconfirmed
AFTER_BUSY = 5.0           # s after that during which it gets AFTER_BUSY s more than DEAD_AFTER
SWITCHES_PER_LIMIT = 50    # DEAD_AFTER is for up to this many switches; one more DEAD_AFTER per this many more
BEHIND = 0.5               # s: a tick handled this late judges nobody
MASS = 0.25                # more than this share of the switches silent at once (and more than 2): judge nobody


class Echoes:
    def __init__(self, interval: float = ECHO_INTERVAL, dead_after: float = DEAD_AFTER,
                 busy_dead_after: float = BUSY_DEAD_AFTER):
        self.interval, self.dead_after, self.busy_dead_after = interval, dead_after, busy_dead_after
        self.heard: dict[int, float] = {}       # dpid -> when something last came from it
        self.asked: dict[int, float] = {}       # dpid -> when its oldest unanswered echo was asked
        self.busy_at: dict[int, float] = {}     # dpid -> when it last had updates of ours unconfirmed
        self.last_ask: dict[int, float] = {}    # dpid -> when an echo was last asked
        self.mass_silences = 0                  # ticks that judged nobody: too many silent at once

    def connected(self, dpid: int, now: float) -> None:
        self.heard[dpid] = now
        for d in (self.asked, self.last_ask, self.busy_at):
            d.pop(dpid, None)

    def gone(self, dpid: int) -> None:
        for d in (self.heard, self.asked, self.last_ask, self.busy_at):
            d.pop(dpid, None)

    def heard_from(self, dpid: int, at: float) -> None:
        """A message from `dpid` arrived at `at` (its event's timestamp)."""
        if dpid in self.heard and at >= self.heard[dpid]:
            self.heard[dpid] = at
            if dpid in self.asked and self.asked[dpid] <= at:
                del self.asked[dpid]

    def tick(self, now: float, busy=frozenset(), handled: float | None = None) -> tuple[list[int], list[int]]:
        """(switches to send an echo request to now, switches dead); `busy`: those with
        updates of ours unconfirmed; `handled`: when the app got to this tick (default:
        `now`). The caller sends the requests (asked as of `now`)."""
        ask, dead, silent = [], [], 0
        dead_after = self.dead_after * max(1, -(-len(self.heard) // SWITCHES_PER_LIMIT))
        judge = handled is None or handled - now <= BEHIND
        for dpid, heard in self.heard.items():
            if dpid in busy:
                self.busy_at[dpid] = now
                limit = self.busy_dead_after
            elif now - self.busy_at.get(dpid, float("-inf")) < AFTER_BUSY:
                limit = dead_after + AFTER_BUSY
            else:
                limit = dead_after
            silent += dpid in self.asked and now - heard > limit / 2
            if judge and dpid in self.asked and now - heard > limit:
                dead.append(dpid)
            elif now - self.last_ask.get(dpid, float("-inf")) >= self.interval:
                ask.append(dpid)
                self.last_ask[dpid] = now
                self.asked.setdefault(dpid, now)
        if dead and silent > max(2, MASS * len(self.heard)):
            self.mass_silences += 1
            return ask, []
        return ask, dead
