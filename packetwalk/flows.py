"""`packetwalk flows HV`: a hypervisor's br-int as `ovs-ofctl --names dump-flows` shows it,
table by table, each flow with what its table is for and the object the controller made it
for (from its cookie: a VM port, a VTEP, a binding, a LIF, a route ...).

The flows are the switch's own (ovs-ofctl on the running lab's hypervisor); who owns each
cookie comes from the controller's API (GET /v1/hypervisors/HV/flows).
"""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

from controller.flows import COOKIE_APP, COOKIE_APP_MASK, COOKIE_OWNER_MASK
from controller.tables import PURPOSE, TABLE_NAMES, Table

BRIDGE = "br-int"
_NUMBERS = {name: number for number, name in TABLE_NAMES.items()}
_COOKIE = re.compile(r"\bcookie=(0x[0-9a-f]+)")
_TABLE = re.compile(r'\btable="?([\w-]+)')     # OVS quotes a name with "_" in it: table="l2_lookup"
_NOISE = re.compile(r"\s*\b(duration|idle_age|hard_age)=[^,\s]+,?")


class FlowsError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Row:
    table: int
    table_name: str
    purpose: str
    owner: str           # the controller's object, "stale: ..." for a cookie it no longer wants, or "-"
    cookie: str
    ofctl: str           # the line as ovs-ofctl printed it (without its ever-changing ages)


def table_number(text: str) -> int | None:
    """`l2_lookup`, `L2_LOOKUP` or `60` -> 60; None if it is none of br-int's tables."""
    if text.isdigit():
        return int(text)
    return _NUMBERS.get(text.lower())


def annotate(dump: str, api_flows: list[dict]) -> list[Row]:
    """Pure: ovs-ofctl dump-flows output + the API's flows (cookie, owner) -> rows in table order."""
    owners = {int(f["cookie"], 16): f["owner"] for f in api_flows}
    by_owner_bits = {c & (COOKIE_APP_MASK | COOKIE_OWNER_MASK): o for c, o in owners.items()}
    rows = []
    for line in dump.splitlines():
        cookie, table = _COOKIE.search(line), _TABLE.search(line)
        if not cookie or not table:
            continue                     # the reply's header, not a flow
        value, number = int(cookie.group(1), 16), table_number(table.group(1))
        if value in owners:
            owner = owners[value]
        elif value & COOKIE_APP_MASK == COOKIE_APP:
            owner = "stale: " + by_owner_bits.get(value & (COOKIE_APP_MASK | COOKIE_OWNER_MASK), "unknown owner")
        else:
            owner = "-"
        known = number in Table._value2member_map_
        rows.append(Row(number if number is not None else -1,
                        TABLE_NAMES[number] if known else table.group(1),
                        PURPOSE[Table(number)] if known else "not packetwalk's pipeline",
                        owner, f"{value:#x}", _NOISE.sub("", line).strip().rstrip(",")))
    return sorted(rows, key=lambda r: r.table)


def select(rows: list[Row], table: str | None = None, owner: str | None = None) -> list[Row]:
    """--table NAME|NUMBER; --owner port:vm1 (one object), vm1 (any kind) or port (every port)."""
    if table is not None:
        number = table_number(table)
        if number is None:
            raise FlowsError(f"--table {table!r}: br-int's tables are "
                             + ", ".join(f"{n} {name}" for n, name in sorted(TABLE_NAMES.items())))
        rows = [r for r in rows if r.table == number]
    if owner is not None:
        rows = [r for r in rows if owner in (r.owner, r.owner.partition(":")[2], r.owner.partition(":")[0])]
    return rows


def text(hv: str, rows: list[Row]) -> str:
    out = [f"{hv} {BRIDGE}: {len(rows)} flows (`ovs-ofctl --names dump-flows {BRIDGE}`, "
           f"each with the object the controller made it for)"]
    width = max((len(r.owner) for r in rows), default=0)
    last = None
    for r in rows:
        if r.table != last:
            out += ["", f"table {r.table} {r.table_name}: {r.purpose}"]
            last = r.table
        out.append(f"  {r.owner:<{width}}  {r.ofctl}")
    return "\n".join(out)


def dump_flows(rundir: Path, hv: str) -> str:
    """`ovs-ofctl --names dump-flows br-int` on a running lab's hypervisor (its own OVS)."""
    env = {**os.environ, "OVS_RUNDIR": str(rundir / hv)}
    if not (rundir / hv / f"{BRIDGE}.mgmt").exists():
        raise FlowsError(f"no hypervisor {hv!r} in the running lab ({rundir})")
    run = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--names", "dump-flows", BRIDGE],
                         env=env, capture_output=True, text=True, timeout=30)
    if run.returncode:
        raise FlowsError(f"{hv}: ovs-ofctl dump-flows {BRIDGE}: {run.stderr.strip()}")
    return run.stdout
