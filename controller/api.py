"""The northbound REST API: routes only (FastAPI), served by uvicorn in a thread of the
controller process.

The model belongs to the os-ken app's thread, so a route never touches it: it hands a
function to `call`, which runs it there (app.py: an EventCall with a Future) and returns
its result or raises its error. The functions are northbound.py's; schemas.py has the
JSON shapes. Refusals are {"detail": "..."} with 400/409 (a rule), 404 (an unknown
name), 422 (a request of the wrong shape, from FastAPI) or 504 (no answer in time).
"""
from __future__ import annotations

import socket
import threading
from typing import Callable, TypeVar

import uvicorn
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse

import packetwalk
from controller import northbound as nb
from controller import schemas as s

T = TypeVar("T")
Call = Callable[[Callable[[nb.Controller], T]], T]
REFUSED = {code: {"model": s.Problem} for code in (400, 404, 409, 504)}


def create_api(call: Call) -> FastAPI:
    api = FastAPI(title="packetwalk controller", version=packetwalk.__version__,
                  description="NSX-style northbound API: hypervisors (VTEPs), logical switches, "
                              "logical routers, and the controller's tables.")
    v1 = APIRouter(prefix="/v1", responses=REFUSED)

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
        return call(lambda c: nb.create_switch(c, body.model_dump()))

    @v1.get("/logical-switches/{name}", tags=["logical switches"], response_model=s.SwitchOut)
    def get_switch(name: str):
        return call(lambda c: nb.switch_row(c.net, nb.find_switch(c.net, name)))

    @v1.patch("/logical-switches/{name}", tags=["logical switches"], response_model=s.SwitchOut)
    def update_switch(name: str, body: s.SwitchPatch):
        return call(lambda c: nb.update_switch(c, name, body.model_dump(exclude_unset=True)))

    @v1.delete("/logical-switches/{name}", tags=["logical switches"], status_code=204)
    def delete_switch(name: str):
        call(lambda c: nb.delete_switch(c, name))

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
        return call(lambda c: nb.add_binding(c, name, body.model_dump()))

    @v1.delete("/logical-switches/{name}/bindings/{ip}", tags=["logical switches"], status_code=204)
    def delete_binding(name: str, ip: str):
        call(lambda c: nb.delete_binding(c, name, ip))

    # --- logical routers --------------------------------------------------------------------
    @v1.get("/routers", tags=["logical routers"], response_model=list[s.RouterOut])
    def list_routers():
        return call(lambda c: [nb.router_row(c.net, r) for r in c.net.topology.routers])

    @v1.post("/routers", tags=["logical routers"], response_model=s.RouterOut, status_code=201)
    def create_router(body: s.RouterIn):
        return call(lambda c: nb.create_router(c, body.model_dump()))

    @v1.get("/routers/{name}", tags=["logical routers"], response_model=s.RouterOut)
    def get_router(name: str):
        return call(lambda c: nb.router_row(c.net, nb.find_router(c.net, name)))

    @v1.delete("/routers/{name}", tags=["logical routers"], status_code=204)
    def delete_router(name: str):
        call(lambda c: nb.delete_router(c, name))

    @v1.post("/routers/{name}/interfaces", tags=["logical routers"], response_model=s.RouterOut, status_code=201)
    def add_interface(name: str, body: s.InterfaceIn):
        return call(lambda c: nb.add_interface(c, name, body.model_dump()))

    @v1.delete("/routers/{name}/interfaces/{switch}", tags=["logical routers"], status_code=204)
    def delete_interface(name: str, switch: str):
        call(lambda c: nb.delete_interface(c, name, switch))

    @v1.post("/routers/{name}/routes", tags=["logical routers"], response_model=s.RouterOut, status_code=201)
    def add_route(name: str, body: s.RouteIn):
        return call(lambda c: nb.add_route(c, name, body.model_dump()))

    @v1.delete("/routers/{name}/routes", tags=["logical routers"], status_code=204)
    def delete_route(name: str, prefix: str = Query(examples=["0.0.0.0/0"])):
        call(lambda c: nb.delete_route(c, name, prefix))

    # --- the controller's own view ------------------------------------------------------------
    @v1.get("/conflicts", tags=["controller"], response_model=list[s.ConflictOut])
    def conflicts():
        """Binding claims the controller refused: a VM claimed an IP another VM (or a LIF) holds."""
        return call(lambda c: nb.conflict_rows(c.net))

    api.include_router(v1)
    return api


class ListenError(RuntimeError):
    """The API's address cannot be listened on; str() says which and why."""


def listen(host: str, port: int) -> socket.socket:
    """The API's socket, bound now: an address in use stops the controller before it starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ListenError(f"northbound API: cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)       # clients queue from now on, even before uvicorn's loop runs
    return sock


def serve(api: FastAPI, sock: socket.socket) -> threading.Thread:
    """Serve `api` on `sock` (from listen()) in a daemon thread of its own."""
    server = uvicorn.Server(uvicorn.Config(api, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="northbound-api", daemon=True)
    thread.start()
    return thread
