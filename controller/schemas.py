"""The northbound API's JSON shapes (pydantic): what a request may carry and what comes back.

Requests are checked here only for shape (FastAPI answers 422 naming the field); the
network's rules (VNI range, IP in subnet, ...) are the topology parser's, in northbound.py.
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


class RouterIn(_In):
    name: str = Field(examples=["dlr2"])
    interfaces: list[InterfaceIn]
    routes: list[RouteIn] = []


# --- answers ----------------------------------------------------------------------------------

class HypervisorOut(BaseModel):
    name: str
    address: str
    vtep_ip: str | None
    dpid: str | None
    openflow: bool
    ovsdb: bool
    attachments: int
    flows: int


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
    vm: str
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
    source: str = Field(description="static | lif | snoop | recovered")


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


class Problem(BaseModel):
    detail: str
