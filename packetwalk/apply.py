"""`packetwalk apply FILE`: make a running controller's intent match a file's logical part.

FILE is a lab topology (its switches, routers, static bindings, and a logical port per VM)
or an intent file (the API's shape: logical_switches, logical_ports, logical_routers,
static_bindings, vmac, arp_suppression). One PUT /v1/intent: the controller checks the
whole of it, writes the difference in one transaction and says what it created, changed
and deleted. Applying the same file again changes nothing.
"""
from __future__ import annotations

import os

import yaml

from mininet_topos.topology import TopologyError, intent_dict, load_topology
from packetwalk.show import ShowError, request

INTENT_KEYS = {"vmac", "arp_suppression", "logical_switches", "logical_ports", "logical_routers", "static_bindings"}


class ApplyError(Exception):
    """One line for the user: the file or the controller's refusal."""


def read_intent(path: str | os.PathLike) -> dict:
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ApplyError(f"{source}: cannot read file: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        raise ApplyError(f"{source}: {where}: YAML syntax error: {getattr(e, 'problem', None) or e}") from None
    if isinstance(data, dict) and "hypervisors" in data:
        try:
            topology = load_topology(source)
        except TopologyError as e:
            raise ApplyError(str(e)) from None
        if topology.kind == "physical":
            raise ApplyError(f"{source}: kind physical: its segments are VLANs of a physical network, "
                             "with no controller: nothing to apply")
        return intent_dict(topology)
    if not isinstance(data, dict) or not set(data) <= INTENT_KEYS:
        extra = sorted(set(data) - INTENT_KEYS) if isinstance(data, dict) else []
        raise ApplyError(f"{source}: neither a lab topology (no hypervisors) nor an intent file"
                         + (f" (unknown key {extra[0]!r}; allowed: {', '.join(sorted(INTENT_KEYS))})" if extra else ""))
    return data


def apply(base: str, intent: dict, source: str = "intent") -> dict:
    """PUT the whole intent; the controller's summary {created, changed, deleted}."""
    try:
        return request(base, "PUT", "/v1/intent", intent, timeout=60.0)
    except ShowError as e:
        raise ApplyError(f"{source}: {e}") from None
