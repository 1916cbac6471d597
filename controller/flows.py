"""Flow specs: a flow is data (table, priority, match, actions, owner).

A spec renders two ways: as ovs-ofctl text (tests, docs, the packet walk) and, in
controller/openflow.py, as an OpenFlow 1.3 FLOW_MOD. Match fields use OpenFlow 1.3 OXM
names as os-ken spells them.

Cookies: every flow's cookie is  APP (16 bits) | owner digest (24) | spec digest (24).
The owner part says what object the flow belongs to (a VM port, a VTEP, a binding); the
spec part changes whenever the flow's content changes, so a controller that reconnects
to a hypervisor knows from the cookie alone whether an installed flow is still right.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib

from controller.tables import Table

COOKIE_APP = 0x7077 << 48            # "pw"
COOKIE_APP_MASK = 0xFFFF << 48
COOKIE_OWNER_MASK = 0xFFFFFF << 24

BROADCAST = "ff:ff:ff:ff:ff:ff"
MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")  # (value, mask): the group bit

ETH_ARP = 0x0806
ETH_IP = 0x0800

# OXM names as ovs-ofctl spells them, where the two differ.
_OFCTL_FIELD = {"ipv4_src": "ip_src", "ipv4_dst": "ip_dst",
                "icmpv4_type": "icmp_type", "icmpv4_code": "icmp_code", "tunnel_id": "tun_id"}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=3).digest(), "big")


@functools.lru_cache(maxsize=65536)
def interned(fn):
    """Flows are immutable: a constructor called again with the same arguments (the same
    ARP responder on 200 hypervisors) returns the same Flow, cookie already computed."""
    return functools.lru_cache(maxsize=1 << 17)(fn)


@functools.lru_cache(maxsize=65536)
def owner_cookie(owner: str) -> int:
    """The cookie bits that every flow of `owner` shares (match with COOKIE_APP|OWNER mask)."""
    return COOKIE_APP | _digest(owner) << 24


def ofctl_field(name: str) -> str:
    return _OFCTL_FIELD.get(name, name)


def _value(v) -> str:
    if isinstance(v, tuple):
        return f"{_value(v[0])}/{_value(v[1])}"
    return str(v)


# --- actions -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Output:
    port: int | str          # an OpenFlow port number, or "in_port" / "controller"

    def ofctl(self) -> str:
        return f"output:{self.port}" if isinstance(self.port, int) else self.port


@dataclasses.dataclass(frozen=True)
class SetField:
    field: str
    value: object

    def ofctl(self) -> str:
        return f"set_field:{_value(self.value)}->{ofctl_field(self.field)}"


@dataclasses.dataclass(frozen=True)
class Move:
    src: str
    dst: str

    def ofctl(self) -> str:
        return f"move:{ofctl_field(self.src)}->{ofctl_field(self.dst)}"


@dataclasses.dataclass(frozen=True)
class DecTtl:
    def ofctl(self) -> str:
        return "dec_ttl"


@dataclasses.dataclass(frozen=True)
class CheckPktLarger:
    """OVS's check_pkt_larger: bit 0 of register `dst` := (frame length > `length`)."""
    length: int
    dst: str

    def ofctl(self) -> str:
        return f"check_pkt_larger({self.length})->{self.dst}[0]"


@dataclasses.dataclass(frozen=True)
class Group:
    """Hand the packet to group `id` (a fast-failover group: see controller/mobility.py)."""
    id: int

    def ofctl(self) -> str:
        return f"group:{self.id}"


@dataclasses.dataclass(frozen=True)
class Meter:
    """The meter instruction: the packet passes meter `id` first (a band drops over its rate).
    Always the first action; rendered as OpenFlow 1.3's meter instruction."""
    id: int

    def ofctl(self) -> str:
        return f"meter:{self.id}"


@dataclasses.dataclass(frozen=True)
class Goto:
    """goto_table: an instruction, always last."""
    table: Table

    def ofctl(self) -> str:
        return f"goto_table:{int(self.table)}"


Action = Meter | Output | Group | SetField | Move | DecTtl | CheckPktLarger | Goto


# --- the flow ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Flow:
    table: Table
    priority: int
    match: tuple[tuple[str, object], ...]
    actions: tuple[Action, ...]
    owner: str

    @classmethod
    def of(cls, table: Table, priority: int, match: dict, actions, owner: str) -> "Flow":
        acts = tuple(actions)
        if any(isinstance(a, Goto) for a in acts[:-1]):
            raise ValueError(f"{owner}: goto_table must be the last action")
        if any(isinstance(a, Meter) for a in acts[1:]):
            raise ValueError(f"{owner}: a meter must be the first action")
        return cls(table, priority, tuple(match.items()), acts, owner)

    @property
    def key(self) -> tuple:
        """What OpenFlow identifies a flow by: two flows with one key cannot coexist."""
        return (int(self.table), self.priority, self.match)

    def ofctl_match(self) -> str:
        return ",".join(f"{ofctl_field(k)}={_value(v)}" for k, v in self.match)

    def ofctl_actions(self) -> str:
        return ",".join(a.ofctl() for a in self.actions) or "drop"

    @functools.cached_property
    def cookie(self) -> int:
        """Computed once per flow (a frozen dataclass keeps it in its __dict__, outside
        equality and hashing)."""
        return owner_cookie(self.owner) | _digest(f"{self.key}|{self.ofctl_actions()}")

    def ofctl(self) -> str:
        """The flow as `ovs-ofctl add-flow` text."""
        match = self.ofctl_match()
        return (f"table={int(self.table)},priority={self.priority},cookie={self.cookie:#x}"
                f"{',' + match if match else ''},actions={self.ofctl_actions()}")


@dataclasses.dataclass(frozen=True)
class FlowDiff:
    add: tuple[Flow, ...]
    delete: tuple[int, ...]     # cookies of installed flows that are no longer wanted

    def __bool__(self) -> bool:
        return bool(self.add or self.delete)


def diff(wanted: list[Flow] | tuple[Flow, ...], installed_cookies: set[int]) -> FlowDiff:
    """What to send to bring a switch holding `installed_cookies` to `wanted`.

    A changed flow keeps its key and gets a new cookie: the ADD replaces it in place, and
    the DELETE of the old cookie (strict, cookie-masked) then finds nothing: no gap in
    forwarding, no table flushed.
    """
    by_cookie = {f.cookie: f for f in wanted}
    add = tuple(f for c, f in by_cookie.items() if c not in installed_cookies)
    delete = tuple(sorted(c for c in installed_cookies if c not in by_cookie))
    return FlowDiff(add, delete)
