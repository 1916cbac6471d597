"""What the controller tells others, as data: the state file (`packetwalk show` and the lab
read it) and the rows it reports to its database for the hypervisors it owns. Pure but for
write_json."""
from __future__ import annotations

import json
import os

from controller.model import Network


def state_dict(net: Network, flow_mods: dict, installed: dict) -> dict:
    """The controller's tables, as `packetwalk show` and the lab read them."""
    return {
        "hypervisors": {h.name: {
            "address": h.address, "vtep_ip": h.vtep_ip, "dpid": h.dpid,
            "openflow": h.of_connected, "ovsdb": h.ovsdb_connected, "up": h.up,
            "attachments": {a.port: {"vm": a.lport, "mac": a.mac, "vni": a.vni, "ofport": a.ofport}
                            for a in h.attachments.values()},
            "tunnels": {r: {"ofport": h.tunnels.get(r), "bfd": s} for r, s in h.tunnel_state.items()},
            "flows": installed.get(h.name, 0), "flow_mods": flow_mods.get(h.name, 0),
        } for h in net.hypervisors.values()},
        "vteps": {str(vni): [h.name for h in net.vtep_table(vni)] for vni in net.switches},
        "arp_table": {str(vni): {ip: {"mac": b.mac, "source": b.source} for ip, b in t.items()}
                      for vni, t in net.bindings.items()},
        "conflicts": net.conflicts,
    }


def database_view(net: Network, owned: set[str], owner_of, port_up) -> dict:
    """The rows this controller reports: its hypervisors, their ports' status, and the
    bindings it learned (of ports on its hypervisors, or on none; other owners report theirs)."""
    mine = [h for h in net.hypervisors.values() if h.name in owned]
    theirs = {a.lport for h in net.hypervisors.values() if h.name not in owned
              and owner_of(h.name) for a in h.attachments.values()}
    return {
        "Learned_Binding": {(net.switches[b.vni].name, b.ip): {
            "switch": net.switches[b.vni].name, "ip": b.ip, "mac": b.mac, "port": b.port,
            "learned_at": int(b.at * 1000)} for b in net.learned.values() if b.port not in theirs},
        "Hypervisor": {h.name: {"vtep_ip": h.vtep_ip or "", "address": h.address,
                                "dpid": "" if h.dpid is None else f"{h.dpid:016x}", "openflow": h.of_connected,
                                "ovsdb": h.ovsdb_connected} for h in mine},
        "Port_Status": {a.lport: {"port": a.lport, "up": port_up(a.lport), "hypervisor": h.name,
                                  "interface": a.port}
                        for h in mine for a in h.attachments.values()},
    }


def stamped(view: dict, now_ms: int) -> dict:
    """The view with each hypervisor row's last_seen."""
    return {**view, "Hypervisor": {k: {**v, "last_seen": now_ms} for k, v in view["Hypervisor"].items()}}


def write_json(path: str, data: dict) -> None:
    """Replace `path` whole (readers never see half a file)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
