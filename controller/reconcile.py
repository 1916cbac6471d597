"""The reconciler, pure: from the engine's changes to operations, as data.

It keeps, per hypervisor, what br-int holds once everything sent so far is applied (its
cookies, and each flow's key where we sent it), and the difference still to send. `plan()`
turns that difference into a Plan: flow updates per hypervisor in stages, each update one
atomic bundle (openflow.bundle), and each stage sent only once the one before is confirmed
everywhere (the connection layer does that: connection.py). The stages are make-before-break:

    stage 0  adds on the hypervisors that gained a VM port (the new location of a VM)
    stage 1  every other add (other hypervisors re-pointed at the new location)
    stage 2  every delete (the old location, and what nothing wants any more)

A changed flow keeps its key and gets a new cookie: its add replaces it in place, so its
old cookie needs no delete. The tunnel ports each hypervisor should have are data too
(TunnelUpdate: the whole wanted set; ovsdb.set_tunnels makes it so in one transaction),
asked once until the hypervisor's database shows them.
"""
from __future__ import annotations

import dataclasses

from controller.engine import Changes
from controller.flows import Flow
from controller.model import Network


@dataclasses.dataclass(frozen=True)
class FlowUpdate:
    """One atomic change to one hypervisor's br-int."""
    hypervisor: str
    add: tuple[Flow, ...]
    delete: tuple[int, ...]      # cookies

    def __len__(self) -> int:
        return len(self.add) + len(self.delete)


@dataclasses.dataclass(frozen=True)
class TunnelUpdate:
    hypervisor: str
    wanted: dict[str, str]       # remote hypervisor -> its VTEP IP: exactly these tunnel ports


@dataclasses.dataclass(frozen=True)
class Plan:
    seq: int
    stages: tuple[tuple[FlowUpdate, ...], ...]
    first: frozenset[str] = frozenset()     # hypervisors whose adds are stage 0 (a VM landed there)

    def hypervisors(self) -> set[str]:
        return {u.hypervisor for stage in self.stages for u in stage}

    def flow_mods(self) -> int:
        return sum(len(u) for stage in self.stages for u in stage)


class _Switch:
    """One hypervisor's br-int as the reconciler sees it."""
    def __init__(self, cookies: set[int]):
        self.installed: dict[int, tuple | None] = dict.fromkeys(cookies)   # cookie -> key (None: read back)
        self.keys: dict[tuple, int] = {}
        self.add: dict[int, Flow] = {}
        self.delete: set[int] = set()
        self.local = False

    def want(self, add: dict[int, Flow], delete) -> None:
        for c in delete:
            if self.add.pop(c, None) is None and c in self.installed:
                self.delete.add(c)
        for c, f in add.items():
            if c in self.installed:
                self.delete.discard(c)
            else:
                self.add[c] = f

    def take(self) -> tuple[tuple[Flow, ...], tuple[int, ...]]:
        """The pending difference, now counted as sent."""
        add, delete = tuple(self.add.values()), set(self.delete)
        for f in add:
            replaced = self.keys.get(f.key)
            if replaced is not None and replaced != f.cookie:   # the add overwrites it in place
                self.installed.pop(replaced, None)
                delete.discard(replaced)
            self.installed[f.cookie] = f.key
            self.keys[f.key] = f.cookie
        for c in delete:
            key = self.installed.pop(c, None)
            if key is not None and self.keys.get(key) == c:
                del self.keys[key]
        self.add, self.delete, self.local = {}, set(), False
        return add, tuple(sorted(delete))


class Reconciler:
    def __init__(self):
        self.switches: dict[str, _Switch] = {}       # hypervisors whose flows have been read
        self.requested: dict[str, dict[str, str]] = {}   # hypervisor -> tunnels asked, not yet seen
        self.seq = 0

    # --- what a hypervisor holds ---------------------------------------------------------
    def read(self, hv: str, cookies: set[int], wanted: dict[int, Flow]) -> None:
        """`hv`'s br-int holds `cookies` (a flow-stats read after a connect or an error):
        the next plan brings it to `wanted` by difference."""
        sw = self.switches[hv] = _Switch(cookies)
        sw.want(wanted, set(cookies) - wanted.keys())
        sw.local = True

    def forget(self, hv: str) -> None:
        """Disconnected, or an update failed: nothing is known until it is read again."""
        self.switches.pop(hv, None)

    def installed(self, hv: str) -> set[int] | None:
        sw = self.switches.get(hv)
        return set(sw.installed) if sw else None

    def count(self, hv: str) -> int:
        """How many of the flows `hv` should hold it holds once everything sent is applied,
        in O(1) (a row of /v1/hypervisors): what it holds less what is still to go (every
        cookie held and not wanted is in `delete` until sent), 0 if it is not read."""
        sw = self.switches.get(hv)
        return len(sw.installed) - len(sw.delete) if sw else 0

    # --- what it should hold ---------------------------------------------------------------
    def feed(self, changes: Changes) -> None:
        for hv, delta in changes.flows.items():
            sw = self.switches.get(hv)
            if sw is not None:
                sw.want(delta.add, delta.delete)
                sw.local |= hv in changes.local

    def pending(self) -> bool:
        return any(sw.add or sw.delete for sw in self.switches.values())

    def plan(self) -> Plan | None:
        """Everything pending, as one plan in make-before-break stages (None: nothing)."""
        stages: list[list[FlowUpdate]] = [[], [], []]
        for hv, sw in sorted(self.switches.items()):
            local = sw.local
            add, delete = sw.take()
            if add:
                stages[0 if local else 1].append(FlowUpdate(hv, add, ()))
            if delete:
                stages[2].append(FlowUpdate(hv, (), delete))
        first = frozenset(u.hypervisor for u in stages[0])
        stages = tuple(tuple(s) for s in stages if s)
        if not stages:
            return None
        self.seq += 1
        return Plan(self.seq, stages, first)

    # --- tunnel ports ------------------------------------------------------------------------
    def tunnels(self, net: Network, names) -> list[TunnelUpdate]:
        """Tunnel-port changes for the hypervisors in `names`: one per hypervisor whose
        ports differ from what it wants, unless that was asked already."""
        out = []
        for name in sorted(names):
            hv = net.hypervisors.get(name)
            if hv is None or not hv.ovsdb_connected:
                continue
            wanted = net.wanted_tunnels(hv)
            if set(wanted) == set(hv.tunnel_state):
                self.requested.pop(name, None)
            elif self.requested.get(name) != wanted:
                self.requested[name] = wanted
                out.append(TunnelUpdate(name, wanted))
        return out

    def tunnels_failed(self, hv: str) -> None:
        self.requested.pop(hv, None)
