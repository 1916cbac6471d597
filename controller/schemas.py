"""The northbound API's JSON shapes (pydantic): what a request may carry and what comes back.

Requests are checked here only for shape (FastAPI answers 422 naming the field); the
network's rules (VNI range, IP in subnet, ...) are the intent's (controller/intent.py).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ---------------------------------------------------------------------------------

class SwitchIn(_In):
    name: str = Field(examples=["db"])
    vni: StrictInt = Field(examples=[5003], description="VXLAN network identifier, 4096..16777215")
    subnet: str = Field(examples=["10.1.3.0/24"])


class SwitchPatch(_In):
    vni: StrictInt | None = Field(None, description="only while no VM port is attached")
    subnet: str | None = Field(None, description="every VM, LIF and binding on the switch must fit")


class BindingIn(_In):
    ip: str = Field(examples=["10.1.1.50"])
    mac: str = Field(examples=["00:50:56:00:99:01"])


class InterfaceIn(_In):
    switch: str = Field(examples=["db"], description="logical switch name (or VNI)")
    ip: str = Field(examples=["10.1.3.1"], description="the router's IP on that switch: its gateway")


class RouteIn(_In):
    prefix: str = Field(examples=["0.0.0.0/0"])
    next_hop: str = Field(examples=["10.1.1.254"], description="inside a subnet the router is on")


class PortIn(_In):
    name: str = Field(examples=["vm7"], description="the name a hypervisor's interface gives in external_ids:iface-id")
    switch: str = Field(examples=["web"], description="logical switch name (or VNI)")
    mac: str = Field(examples=["00:50:56:00:00:07"])
    ips: list[str] = Field([], examples=[["10.1.1.17"]], description="configured addresses (answered from intent)")
    learn: bool = Field(False, description="learn the IP from the VM's ARP (free addresses of the subnet only)")
    trusted: bool = Field(False, description="forwards for others (edge, router VM)")


class PortPatch(_In):
    mac: str | None = None
    ips: list[str] | None = None
    learn: bool | None = None
    trusted: bool | None = None


class SettingsIn(_In):
    vmac: str | None = Field(None, examples=["02:50:56:56:44:52"])
    arp_suppression: bool | None = None


class IntentIn(_In):
    """The whole logical network (`packetwalk apply`): what is not here is deleted."""
    vmac: str | None = None
    arp_suppression: bool = True
    logical_switches: list[SwitchIn] = []
    logical_ports: list[PortIn] = []
    logical_routers: list["RouterIn"] = []
    static_bindings: list["StaticBindingIn"] = []


class StaticBindingIn(BindingIn):
    switch: str


class RouterIn(_In):
    name: str = Field(examples=["dlr2"])
    interfaces: list[InterfaceIn]
    routes: list[RouteIn] = []


# --- answers ----------------------------------------------------------------------------------

class PortOut(BaseModel):
    name: str
    switch: str
    mac: str
    ips: list[str]
    learn: bool
    trusted: bool
    learned: list[str] = Field(description="addresses learned from its ARP")
    up: bool
    hypervisor: str | None
    interface: str | None


class LearnedOut(BaseModel):
    switch: str
    ip: str
    mac: str
    port: str
    learned_at: float


class SettingsOut(BaseModel):
    vmac: str
    arp_suppression: bool
    generation: int


class ApplyOut(BaseModel):
    created: list[str]
    changed: list[str]
    deleted: list[str]


class HypervisorOut(BaseModel):
    name: str
    address: str
    vtep_ip: str | None
    dpid: str | None
    openflow: bool
    ovsdb: bool
    up: bool = Field(True, description="false: its OpenFlow or OVSDB stopped answering; out of every flood list")
    attachments: int
    flows: int
    controller: str | None = Field(None, description="the controller that owns it now (programs it: OpenFlow master)")
    flow_mods: int = Field(0, description="flow-mods this controller sent it since this controller started")


class TunnelOut(BaseModel):
    remote: str
    remote_vtep_ip: str | None
    ofport: int | None
    bfd: str


class FlowOut(BaseModel):
    cookie: str
    table: str
    priority: int
    owner: str
    ofctl: str


class FlowTableOut(BaseModel):
    hypervisor: str
    total: int
    tables: dict[str, int]
    flows: list[FlowOut]


class SwitchOut(BaseModel):
    name: str
    vni: int
    subnet: str
    router: str | None
    gateway: str | None
    vteps: list[str]
    ports: int


class VtepOut(BaseModel):
    hypervisor: str
    vtep_ip: str | None
    ports: int


class VtepTableOut(BaseModel):
    switch: str
    vni: int
    vteps: list[VtepOut]


class MacOut(BaseModel):
    mac: str
    vm: str = Field(description="the logical port")
    hypervisor: str
    vtep_ip: str | None
    port: str
    ofport: int


class MacTableOut(BaseModel):
    switch: str
    vni: int
    macs: list[MacOut]


class BindingOut(BaseModel):
    ip: str
    mac: str
    source: str = Field(description="port | learned | static | lif")


class ArpTableOut(BaseModel):
    switch: str
    vni: int
    bindings: list[BindingOut]


class InterfaceOut(BaseModel):
    switch: str
    vni: int
    ip: str
    subnet: str


class RouteOut(BaseModel):
    prefix: str
    next_hop: str


class RouterOut(BaseModel):
    name: str
    interfaces: list[InterfaceOut]
    routes: list[RouteOut]


class ConflictOut(BaseModel):
    switch: str
    vni: int
    ip: str
    claimed_by: str
    held_by: str


class PortSecurityOut(BaseModel):
    """Frames a VM port sent that port security dropped at its hypervisor, per cause."""
    port: str
    hypervisor: str
    dropped: dict[str, int] = Field(examples=[{"mac-spoofed": 3, "ipv4-spoofed": 12}])
    total: int


class Problem(BaseModel):
    detail: str


IntentIn.model_rebuild()


class RealizedOut(BaseModel):
    generation: int = Field(description="changes the controller has taken in")
    realized: int = Field(description="the newest change confirmed on every hypervisor it touches")
