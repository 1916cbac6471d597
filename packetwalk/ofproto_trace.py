"""Parse `ovs-appctl ofproto/trace` output (OVS 3.x) into data. Pure."""
from __future__ import annotations

import dataclasses
import re

# A table line starts the line (" 0." for one digit); deeper ones are the branch OVS traces
# for check_pkt_larger's other outcome, not the packet's path.
_TABLE = re.compile(r"^ ?(\d+)\. (.*?)(?:, )?priority (\d+)(?:, cookie (0x[0-9a-f]+))?$")
_NO_MATCH = re.compile(r"^ ?(\d+)\. No match\.")


@dataclasses.dataclass
class Hit:
    """One table lookup: the flow that matched and what it did."""
    table: int
    match: str
    priority: int
    cookie: int | None
    actions: list[str] = dataclasses.field(default_factory=list)

    @property
    def outputs(self) -> list[str]:
        return [a.split(":", 1)[1] for a in self.actions if a.startswith("output:")]

    @property
    def to_controller(self) -> bool:
        return any(a.startswith("CONTROLLER") for a in self.actions)

    @property
    def in_port(self) -> bool:
        return "IN_PORT" in self.actions


@dataclasses.dataclass
class Trace:
    bridge: str
    flow: str
    hits: list[Hit]
    tunnels: list[dict]        # {"remote_ip", "local_ip", "local_mac", "remote_mac"} per tunnel output
    final_flow: dict[str, str]
    datapath_actions: str
    no_match_table: int | None = None

    @property
    def dropped(self) -> bool:
        return self.datapath_actions.strip() == "drop"


def fields(flow: str) -> dict[str, str]:
    """'icmp,in_port=1,dl_src=..' -> {'icmp': '', 'in_port': '1', ...}"""
    out = {}
    for part in flow.split(","):
        key, _, value = part.partition("=")
        if key:
            out[key.strip()] = value.strip()
    return out


def parse(text: str) -> Trace:
    lines = text.splitlines()
    flow = next((l[len("Flow: "):] for l in lines if l.startswith("Flow: ")), "")
    bridge = next((m.group(1) for l in lines if (m := re.match(r'^bridge\("([^"]+)"\)', l))), "")
    hits, tunnels, no_match = [], [], None
    in_first_bridge = True
    for line in lines:
        if line.startswith('bridge("') and hits:
            in_first_bridge = False          # nested bridges (br-phy) are the underlay's business
        if not in_first_bridge:
            continue
        if m := _NO_MATCH.match(line):
            no_match = int(m.group(1))
        elif m := _TABLE.match(line):
            hits.append(Hit(int(m.group(1)), m.group(2).rstrip(", "), int(m.group(3)),
                            int(m.group(4), 16) if m.group(4) else None))
        elif hits and (m := re.match(r"^\s+-> tunneling to (\S+) via", line)):
            tunnels.append({"remote_ip": m.group(1), "port": (hits[-1].outputs or [None])[-1]})
        elif tunnels and (m := re.match(r"^\s+-> tunneling from (\S+) (\S+) to (\S+) (\S+)", line)):
            tunnels[-1].update(local_mac=m.group(1), local_ip=m.group(2), remote_mac=m.group(3))
        elif hits and re.match(r"^\s{4}\S", line) and not line.strip().startswith("->"):
            hits[-1].actions.append(line.strip())
        elif hits and any(a.startswith("group:") for a in hits[-1].actions) \
                and re.match(r"^\s{5,}(output:|CONTROLLER|resubmit)", line):
            hits[-1].actions.append(line.strip())      # the group's chosen bucket: what it did
    final = next((l[len("Final flow: "):] for l in lines if l.startswith("Final flow: ")), flow)
    dp = next((l[len("Datapath actions: "):] for l in lines if l.startswith("Datapath actions: ")), "")
    return Trace(bridge, flow, hits, tunnels, _after_size_check(fields(final), hits), dp, no_match)


_FLOW_FIELD = {"eth_dst": "dl_dst", "eth_src": "dl_src", "ip_dst": "nw_dst", "ip_src": "nw_src"}


def _after_size_check(final: dict, hits: list[Hit]) -> dict:
    """OVS's "Final flow" stops where check_pkt_larger forks the translation: the fields the
    flows set after it (the next hop's MAC, say) are applied here."""
    checked = next((i for i, h in enumerate(hits) if any(a.startswith("check_pkt_larger") for a in h.actions)), None)
    if checked is None:
        return final
    out = dict(final)
    for h in hits[checked + 1:]:
        for a in h.actions:
            if m := re.match(r"set_field:(\S+)->(\w+)$", a):
                out[_FLOW_FIELD.get(m.group(2), m.group(2))] = m.group(1)
    return out
