"""`packetwalk show`: the controller's tables, read through its northbound API and printed
the way an NSX controller's CLI prints them (aligned columns under a header).

    packetwalk show vteps web          # or the VNI: show vteps 5001
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_API = "http://127.0.0.1:8181"
TIMEOUT = 10.0   # s


class ShowError(Exception):
    """One line for the user: no controller, or the API's refusal."""


def api_url(explicit: str | None = None) -> str:
    """--api, else the running lab's (its lab.json), else the default."""
    if explicit:
        return explicit.rstrip("/")
    try:
        from mininet_topos.lab import LAB_FILE, RUNDIR
        return (json.loads((RUNDIR / LAB_FILE).read_text()).get("api") or DEFAULT_API).rstrip("/")
    except (ImportError, OSError, ValueError, AttributeError):
        return DEFAULT_API


def get(base: str, path: str):
    return request(base, "GET", path)


def request(base: str, method: str, path: str, body=None, timeout: float = TIMEOUT):
    """One API call; its JSON answer (None for 204), or ShowError with the API's message."""
    url = base + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            text = answer.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        try:
            detail = json.load(e).get("detail")
        except (ValueError, AttributeError):
            detail = None
        if isinstance(detail, list) and detail:         # FastAPI's 422: each error locates its field
            detail = "; ".join(_field_error(x) for x in detail)
        raise ShowError(detail if isinstance(detail, str) else f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ShowError(f"no controller API at {base} ({reason}): is a lab running? "
                        "(start one with `packetwalk lab`, or give --api URL)") from None
    except ValueError:
        raise ShowError(f"{url}: the answer is not JSON: is that a packetwalk controller?") from None


def _field_error(error) -> str:
    """One of FastAPI's request errors as "logical_ports[0] ip: Extra inputs are not permitted"."""
    if not isinstance(error, dict):
        return str(error)
    where = ""
    for part in error.get("loc", [])[1:]:        # the first is "body", "query" or "path"
        where += f"[{part}]" if isinstance(part, int) else f"{' ' if where else ''}{part}"
    return f"{where or 'request'}: {error.get('msg', 'invalid')}"


def table(headers: list[str], rows: list[list]) -> str:
    """Aligned columns under a header; a missing value prints as '-'."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [headers, *cells]]
    return "\n".join(lines)


def _updown(flag: bool) -> str:
    return "up" if flag else "down"


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


# view -> (API path for its argument, text renderer of the API's JSON)
VIEWS = {
    "hypervisors": (lambda _: "/v1/hypervisors", lambda data: table(
        ["Hypervisor", "Address", "VTEP-IP", "DPID", "OpenFlow", "OVSDB", "State", "Ports", "Flows"],
        [[h["name"], h["address"], h["vtep_ip"], h["dpid"], _updown(h["openflow"]), _updown(h["ovsdb"]),
          "up" if h.get("up", True) else "DOWN", h["attachments"], h["flows"]] for h in data])),
    "vteps": (lambda sw: f"/v1/logical-switches/{_quote(sw)}/vteps", lambda data: table(
        ["VNI", "Hypervisor", "VTEP-IP", "Ports"],
        [[data["vni"], v["hypervisor"], v["vtep_ip"], v["ports"]] for v in data["vteps"]])),
    "mac-table": (lambda sw: f"/v1/logical-switches/{_quote(sw)}/mac-table", lambda data: table(
        ["VNI", "MAC", "VM", "Hypervisor", "VTEP-IP", "Port"],
        [[data["vni"], m["mac"], m["vm"], m["hypervisor"], m["vtep_ip"], m["port"]] for m in data["macs"]])),
    "arp-table": (lambda sw: f"/v1/logical-switches/{_quote(sw)}/arp-table", lambda data: table(
        ["VNI", "IP", "MAC", "Source"],
        [[data["vni"], b["ip"], b["mac"], b["source"]] for b in data["bindings"]])),
    "routers": (lambda _: "/v1/routers", lambda data: _routers(data)),
    "tunnels": (lambda hv: f"/v1/hypervisors/{_quote(hv)}/tunnels", lambda data: table(
        ["Remote", "Remote-VTEP-IP", "OFPort", "BFD"],
        [[t["remote"], t["remote_vtep_ip"], t["ofport"], t["bfd"]] for t in data])),
    "port-security": (lambda _: "/v1/port-security", lambda data: table(
        ["Port", "Hypervisor", "Dropped", "Causes"],
        [[p["port"], p["hypervisor"], p["total"], ", ".join(f"{c} {n}" for c, n in p["dropped"].items() if n)]
         for p in data])),
}


def _routers(data: list[dict]) -> str:
    text = table(["Router", "Switch", "VNI", "LIF-IP", "Subnet"],
                 [[r["name"], i["switch"], i["vni"], i["ip"], i["subnet"]] for r in data for i in r["interfaces"]])
    routes = [[r["name"], rt["prefix"], rt["next_hop"]] for r in data for rt in r["routes"]]
    if routes:
        text += "\n\n" + table(["Router", "Prefix", "Next-Hop"], routes)
    return text


def show(view: str, arg: str | None, as_json: bool, api: str | None) -> str:
    path, render = VIEWS[view]
    data = get(api_url(api), path(arg))
    return json.dumps(data, indent=2) if as_json else render(data)
