"""The northbound REST API: routes only (FastAPI), served by uvicorn in a thread of the
controller process.

The model belongs to the os-ken app's thread, so a route never touches it: a read hands a
function to `ctl.call`, which runs it there (app.py: an EventCall with a Future) and returns
its result or raises its error; a write is a database transaction made in the route's own
thread (northbound.py), after which the model follows. schemas.py has the JSON shapes. Refusals are {"detail": "..."} with 400/409 (a rule), 404 (an unknown
name), 422 (a request of the wrong shape, from FastAPI) or 504 (no answer in time).
"""
from __future__ import annotations

import ipaddress
import secrets
import socket
import threading

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from importlib.metadata import version
from controller import northbound as nb
from controller import schemas as s

REFUSED = {code: {"model": s.Problem} for code in (400, 404, 409, 504)}
WAIT_TIMEOUT = 10.0    # s a write with ?wait=hv waits for its change to be realized


def bearer_check(token: str | None):
    """A FastAPI dependency: with a token, every request must carry `Authorization: Bearer
    <token>` (compared in constant time); without one, nothing is checked (loopback only)."""
    def check(request: Request):
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "a bearer token is required (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
    return check


def create_api(ctl: nb.Controller, token: str | None = None) -> FastAPI:
    call = ctl.call
    api = FastAPI(title="packetwalk controller", version=version("packetwalk"),
                  description="NSX-style northbound API: hypervisors (VTEPs), logical switches, "
                              "logical routers, and the controller's tables.")
    v1 = APIRouter(prefix="/v1", responses={**REFUSED, 401: {"model": s.Problem}},
                   dependencies=[Depends(bearer_check(token))])

    @api.exception_handler(nb.ApiError)
    def refused(request: Request, e: nb.ApiError):
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    # --- hypervisors (read only: they come and go by connecting) --------------------------
    @v1.get("/hypervisors", tags=["hypervisors"], response_model=list[s.HypervisorOut])
    def list_hypervisors():
        return call(lambda c: [nb.hypervisor_row(c, h) for _, h in sorted(c.net.hypervisors.items())])

    @v1.get("/hypervisors/{name}", tags=["hypervisors"], response_model=s.HypervisorOut)
    def get_hypervisor(name: str):
        return call(lambda c: nb.hypervisor_row(c, nb.find_hypervisor(c.net, name)))

    @v1.get("/hypervisors/{name}/tunnels", tags=["hypervisors"], response_model=list[s.TunnelOut])
    def tunnels(name: str):
        return call(lambda c: nb.tunnel_rows(c.net, nb.find_hypervisor(c.net, name)))

    @v1.get("/hypervisors/{name}/flows", tags=["hypervisors"], response_model=s.FlowTableOut)
    def flows(name: str):
        def run(c):
            hv = nb.find_hypervisor(c.net, name)
            return nb.flow_table(hv, c.installed_flows(hv))
        return call(run)

    # --- logical switches ({name} is a name or a VNI) -------------------------------------
    @v1.get("/logical-switches", tags=["logical switches"], response_model=list[s.SwitchOut])
    def list_switches():
        return call(lambda c: [nb.switch_row(c.net, sw) for _, sw in sorted(c.net.switches.items())])

    @v1.post("/logical-switches", tags=["logical switches"], response_model=s.SwitchOut, status_code=201)
    def create_switch(body: s.SwitchIn):
        return nb.create_switch(ctl, body.model_dump())

    @v1.get("/logical-switches/{name}", tags=["logical switches"], response_model=s.SwitchOut)
    def get_switch(name: str):
        return call(lambda c: nb.switch_row(c.net, nb.find_switch(c.net, name)))

    @v1.patch("/logical-switches/{name}", tags=["logical switches"], response_model=s.SwitchOut)
    def update_switch(name: str, body: s.SwitchPatch):
        return nb.update_switch(ctl, name, body.model_dump(exclude_unset=True))

    @v1.delete("/logical-switches/{name}", tags=["logical switches"], status_code=204)
    def delete_switch(name: str):
        nb.delete_switch(ctl, name)

    @v1.get("/logical-switches/{name}/vteps", tags=["logical switches"], response_model=s.VtepTableOut)
    def vtep_table(name: str):
        return call(lambda c: nb.vtep_table(c.net, nb.find_switch(c.net, name)))

    @v1.get("/logical-switches/{name}/mac-table", tags=["logical switches"], response_model=s.MacTableOut)
    def mac_table(name: str):
        return call(lambda c: nb.mac_table(c.net, nb.find_switch(c.net, name)))

    @v1.get("/logical-switches/{name}/arp-table", tags=["logical switches"], response_model=s.ArpTableOut)
    def arp_table(name: str):
        return call(lambda c: nb.arp_table(c.net, nb.find_switch(c.net, name)))

    @v1.post("/logical-switches/{name}/bindings", tags=["logical switches"], response_model=s.BindingOut,
             status_code=201)
    def add_binding(name: str, body: s.BindingIn):
        return nb.add_binding(ctl, name, body.model_dump())

    @v1.delete("/logical-switches/{name}/bindings/{ip}", tags=["logical switches"], status_code=204)
    def delete_binding(name: str, ip: str):
        nb.delete_binding(ctl, name, ip)

    # --- logical routers --------------------------------------------------------------------
    @v1.get("/routers", tags=["logical routers"], response_model=list[s.RouterOut])
    def list_routers():
        return call(lambda c: [nb.router_row(c.net, r) for r in c.net.intent.routers])

    @v1.post("/routers", tags=["logical routers"], response_model=s.RouterOut, status_code=201)
    def create_router(body: s.RouterIn):
        return nb.create_router(ctl, body.model_dump())

    @v1.get("/routers/{name}", tags=["logical routers"], response_model=s.RouterOut)
    def get_router(name: str):
        return call(lambda c: nb.router_row(c.net, nb.find_router(c.net, name)))

    @v1.delete("/routers/{name}", tags=["logical routers"], status_code=204)
    def delete_router(name: str):
        nb.delete_router(ctl, name)

    @v1.post("/routers/{name}/interfaces", tags=["logical routers"], response_model=s.RouterOut, status_code=201)
    def add_interface(name: str, body: s.InterfaceIn):
        return nb.add_interface(ctl, name, body.model_dump())

    @v1.delete("/routers/{name}/interfaces/{switch}", tags=["logical routers"], status_code=204)
    def delete_interface(name: str, switch: str):
        nb.delete_interface(ctl, name, switch)

    @v1.post("/routers/{name}/routes", tags=["logical routers"], response_model=s.RouterOut, status_code=201)
    def add_route(name: str, body: s.RouteIn):
        return nb.add_route(ctl, name, body.model_dump())

    @v1.delete("/routers/{name}/routes", tags=["logical routers"], status_code=204)
    def delete_route(name: str, prefix: str = Query(examples=["0.0.0.0/0"])):
        nb.delete_route(ctl, name, prefix)

    # --- logical ports (a hypervisor interface names one in external_ids:iface-id) ---------
    @v1.get("/logical-ports", tags=["logical ports"], response_model=list[s.PortOut])
    def list_ports():
        return call(lambda c: [nb.port_row(c.net, p.name) for p in sorted(c.net.intent.ports, key=lambda p: p.name)])

    @v1.post("/logical-ports", tags=["logical ports"], response_model=s.PortOut, status_code=201)
    def create_port(body: s.PortIn):
        return nb.create_port(ctl, body.model_dump())

    @v1.get("/logical-ports/{name}", tags=["logical ports"], response_model=s.PortOut)
    def get_port(name: str):
        return call(lambda c: nb.port_row(c.net, name))

    @v1.patch("/logical-ports/{name}", tags=["logical ports"], response_model=s.PortOut)
    def update_port(name: str, body: s.PortPatch):
        return nb.update_port(ctl, name, body.model_dump(exclude_unset=True))

    @v1.delete("/logical-ports/{name}", tags=["logical ports"], status_code=204)
    def delete_port(name: str):
        nb.delete_port(ctl, name)

    @v1.get("/learned-bindings", tags=["logical ports"], response_model=list[s.LearnedOut])
    def learned_bindings():
        """Addresses learned from the ARP of "learn the IP" ports."""
        return call(lambda c: nb.learned_rows(c.net))

    @v1.delete("/learned-bindings/{switch}/{ip}", tags=["logical ports"], status_code=204)
    def forget_learned(switch: str, ip: str):
        nb.forget_learned(ctl, switch, ip)

    # --- the whole intent, and global settings ------------------------------------------------
    @v1.get("/intent", tags=["intent"])
    def get_intent():
        """The whole logical network, in the shape PUT takes (`packetwalk apply`)."""
        return call(lambda c: c.net.intent.to_dict())

    @v1.put("/intent", tags=["intent"], response_model=s.ApplyOut)
    def put_intent(body: s.IntentIn):
        """Make the logical network exactly this (what is not here is deleted); say what changed."""
        return nb.apply_intent(ctl, body.model_dump())

    @v1.get("/settings", tags=["intent"], response_model=s.SettingsOut)
    def get_settings():
        return call(nb.settings_row)

    @v1.patch("/settings", tags=["intent"], response_model=s.SettingsOut)
    def update_settings(body: s.SettingsIn):
        return nb.update_settings(ctl, body.model_dump(exclude_unset=True))

    # --- realized: OVN's --wait=hv --------------------------------------------------------------
    @v1.get("/realized", tags=["controller"], response_model=s.RealizedOut)
    def realized():
        """`generation` counts the changes the controller has taken in (intent, ports,
        bindings, hypervisors); `realized` is the newest one confirmed (bundle commit
        replies) on every hypervisor it touches. Any write given `?wait=hv` answers only
        once its change is realized (504 if not within WAIT_TIMEOUT s)."""
        return call(lambda c: c.realized())

    @api.middleware("http")
    async def wait_hv(request: Request, call_next):
        response = await call_next(request)
        if request.query_params.get("wait") != "hv" or request.method == "GET" or response.status_code >= 300:
            return response
        gen = await run_in_threadpool(call, lambda c: c.realized()["generation"])
        if not await run_in_threadpool(ctl.wait_realized, gen, WAIT_TIMEOUT):
            return JSONResponse({"detail": f"the change (generation {gen}) is not confirmed on every hypervisor "
                                           f"it touches after {WAIT_TIMEOUT:.0f} s"}, status_code=504)
        response.headers["x-packetwalk-realized"] = str(gen)
        return response

    # --- the controller's own view ------------------------------------------------------------
    @v1.get("/port-security", tags=["controller"], response_model=list[s.PortSecurityOut])
    def port_security():
        """Per VM port: frames dropped at its hypervisor by port security, per cause (spoofed MAC,
        spoofed IPv4/IPv6 source, lying ARP, VLAN-tagged, other ethertypes)."""
        return call(lambda c: c.guard.counters())

    @v1.get("/conflicts", tags=["controller"], response_model=list[s.ConflictOut])
    def conflicts():
        """Binding claims the controller refused: a VM claimed an IP another VM (or a LIF) holds."""
        return call(lambda c: nb.conflict_rows(c.net))

    api.include_router(v1)
    return api


class ListenError(RuntimeError):
    """The API's address cannot be listened on; str() says which and why."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def listen(host: str, port: int, token: str | None = None) -> socket.socket:
    """The API's socket, bound now: an address in use stops the controller before it starts.
    Anywhere but loopback only with a token: the API changes the network."""
    if not is_loopback(host) and not token:
        raise ListenError(f"northbound API: refusing to listen on {host} without a token: anyone who "
                          "reaches it could change the network (give --api-token-file, or keep the "
                          "default 127.0.0.1)")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ListenError(f"northbound API: cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)       # clients queue from now on, even before uvicorn's loop runs
    return sock


def read_token(path: str) -> str:
    """The bearer token from a file (not the command line, where `ps` shows it)."""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        raise ListenError(f"northbound API: cannot read the token file {path}: {e.strerror or e}") from None
    if len(token) < 16:
        raise ListenError(f"northbound API: the token in {path} is too short (16 characters at least)")
    return token


def serve(api: FastAPI, sock: socket.socket) -> threading.Thread:
    """Serve `api` on `sock` (from listen()) in a daemon thread of its own."""
    server = uvicorn.Server(uvicorn.Config(api, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="northbound-api", daemon=True)
    thread.start()
    return thread
