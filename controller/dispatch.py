"""Sending plans, pure: which bundle goes out when, what is confirmed, what is realized.

One plan is in flight at a time; its stages go out in order, a stage only once every
bundle of the one before is confirmed (COMMIT_REPLY) or its hypervisor is gone (down, or
an error made the controller read it again). While a plan is in flight, new changes pile
up in the reconciler and become the next plan together.

`realized` is OVN's `--wait=hv` for this controller: every change is numbered (a
generation); a generation is realized when everything it started (the plan carrying its
flows, the tunnel ports it asked for and the flows that use them) is confirmed on every
hypervisor it touches, or that hypervisor is gone.

`made` is the newest plan whose first stage (the adds where a VM landed) is confirmed:
make-before-break's "made" point, when frames held for a moving VM can go on to it
(mobility.py, punts.py).
"""
from __future__ import annotations

import dataclasses
from collections import deque

from controller.reconcile import FlowUpdate, Plan


@dataclasses.dataclass(frozen=True)
class Send:
    hypervisor: str
    bundle_id: int
    update: FlowUpdate


class Dispatch:
    def __init__(self):
        self.generation = 0          # the latest change taken in
        self.plan: Plan | None = None
        self.plan_gen = 0
        self._stage = 0
        self._waiting: dict[int, str] = {}         # bundle id -> hypervisor
        self._bundle = 0
        self._open: dict[tuple, int] = {}          # what a generation waits for -> that generation
        self._carried: int | None = None
        self.confirmed: dict[str, int] = {}        # hypervisor -> bundles confirmed
        self.failures: dict[str, int] = {}
        self.made = 0                              # the newest plan whose stage 0 is confirmed

    # --- changes and what they wait for ----------------------------------------------------
    def change(self) -> int:
        """A change was taken in (model updated): its generation."""
        self.generation += 1
        return self.generation

    def wait_for(self, what: tuple, generation: int | None = None) -> None:
        """Generation (default: the latest) is not realized until done(what)."""
        gen = self.generation if generation is None else generation
        self._open[what] = min(gen, self._open.get(what, gen))

    def done(self, what: tuple, carry: bool = False) -> None:
        """`what` is finished; with carry, the next plan inherits its generation (the flows
        that use new tunnel ports come after them)."""
        gen = self._open.pop(what, None)
        if carry and gen is not None:
            self._carried = gen if self._carried is None else min(self._carried, gen)

    @property
    def realized(self) -> int:
        open_ = list(self._open.values())
        if self.plan is not None:
            open_.append(self.plan_gen)
        if self._carried is not None:
            open_.append(self._carried)
        return min(open_) - 1 if open_ else self.generation

    def settle(self) -> None:
        """Nothing more follows what was carried (no flows changed): let it go."""
        self._carried = None

    # --- plans ------------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return self.plan is None

    def start(self, plan: Plan, generation: int | None = None) -> list[Send]:
        """Take `plan` (only when idle); its first stage's bundles."""
        assert self.plan is None, "one plan at a time"
        pending = self._open.pop(("pending",), None)      # the plan carries what was pending
        gen = generation if generation is not None else pending if pending is not None else self.generation
        if self._carried is not None:
            gen, self._carried = min(gen, self._carried), None
        self.plan, self.plan_gen, self._stage = plan, gen, 0
        return self._next()

    def confirm(self, hv: str, bundle_id: int) -> list[Send]:
        """A COMMIT_REPLY: the bundles of the next stage once this one is complete."""
        if self._waiting.get(bundle_id) != hv:
            return []
        del self._waiting[bundle_id]
        self.confirmed[hv] = self.confirmed.get(hv, 0) + 1
        return self._next()

    def fail(self, hv: str, bundle_id: int | None = None) -> list[Send]:
        """An error for one of hv's bundles (or hv went down): stop waiting for hv. The
        caller reads hv again (reconciler.forget + a flow-stats read) and converges it."""
        if bundle_id is not None:
            if self._waiting.get(bundle_id) != hv:
                return []
            self.failures[hv] = self.failures.get(hv, 0) + 1
        self._waiting = {b: h for b, h in self._waiting.items() if h != hv}
        return self._next()

    def _next(self) -> list[Send]:
        while self.plan is not None and not self._waiting:
            if self._stage >= 1 and self.plan.first:
                self.made = max(self.made, self.plan.seq)
            if self._stage >= len(self.plan.stages):
                self.plan = None
                return []
            sends = []
            for update in self.plan.stages[self._stage]:
                self._bundle += 1
                self._waiting[self._bundle] = update.hypervisor
                sends.append(Send(update.hypervisor, self._bundle, update))
            self._stage += 1
            if sends:
                return sends
        return []

    def waiting_on(self) -> set[str]:
        return set(self._waiting.values())
