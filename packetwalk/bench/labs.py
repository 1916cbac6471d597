"""The bench's networks: generated topologies (the seed's logical network, or its physical
baseline, at N hypervisors x M VMs each) and the labs that run them, one at a time.

    with session(progress):                      # the bench run: labs are kept for reuse
        with lab(grid(2, 2), progress) as running:   # started, or the one already running
            ...

Outside a session `lab()` starts the lab and stops it at the end of the block. Inside one,
a lab stays up until a scenario asks for another network or the session ends, so scenarios
that measure the same network share one start. Whoever changes a running lab (a setting,
a VM's place) puts it back before the block ends.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from mininet_topos.lab import Lab, LabError
from mininet_topos.topology import load_topology

SWITCHES = ({"name": "web", "net": 1}, {"name": "app", "net": 2})
FIRST_HOST = 11                 # 10.x.0.11, 10.x.0.12, ... like the seed


def grid(hypervisors: int, vms_per_hypervisor: int, kind: str = "overlay") -> dict:
    """The seed's network at a size: hv1..hvN, vm1..vm(N*M) with vmK on hv((K-1)//M + 1), VMs
    alternating between switches web (10.1.0.0/16) and app (10.2.0.0/16), one router whose
    LIFs (10.x.0.1) are their gateways. Overlay: VNIs 5001/5002 and a distributed router; physical:
    VLANs 101/102 and one central router on a stick (the seed's first scenario)."""
    overlay = kind == "overlay"
    vms = []
    for k in range(hypervisors * vms_per_hypervisor):
        sw = SWITCHES[k % 2]
        host = FIRST_HOST + k // 2
        vms.append({"name": f"vm{k + 1}", "hypervisor": f"hv{k // vms_per_hypervisor + 1}",
                    "switch": sw["name"], "ip": f"10.{sw['net']}.{host // 256}.{host % 256}"})
    segment = ("vni", 5000) if overlay else ("vlan", 100)
    return {"name": f"{'g' if overlay else 'p'}{hypervisors}x{vms_per_hypervisor}", "kind": kind,
            "hypervisors": [{"name": f"hv{i + 1}"} for i in range(hypervisors)],
            "logical_switches": [{"name": sw["name"], segment[0]: segment[1] + sw["net"],
                                  "subnet": f"10.{sw['net']}.0.0/16"} for sw in SWITCHES],
            "logical_routers": [{"name": "dlr1" if overlay else "r1", "interfaces": [
                {"switch": sw["name"], "ip": f"10.{sw['net']}.0.1"} for sw in SWITCHES]}],
            "vms": vms}


class _Session:
    def __init__(self, progress):
        self.progress = progress
        self.dir = Path(tempfile.mkdtemp(prefix="pw-bench-"))
        self.running: Lab | None = None
        self.spec: dict | None = None

    def write(self, spec: dict) -> Path:
        path = self.dir / f"{spec['name']}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    def stop(self):
        if self.running is not None:
            self.running.stop()
        self.running = self.spec = None


_session: _Session | None = None


@contextlib.contextmanager
def session(progress):
    """One bench run: labs are kept between scenarios; everything is stopped at the end."""
    global _session
    _session = _Session(progress)
    try:
        yield
    finally:
        _session.stop()
        shutil.rmtree(_session.dir, ignore_errors=True)
        _session = None


def release() -> None:
    """Stop the session's lab now (a scenario that brings its own network wants the CPU)."""
    if _session is not None:
        _session.stop()


def start(spec: dict, progress, tries: int = 1) -> tuple[Lab, float]:
    """A freshly started lab for `spec` and the seconds its start took (any running one is
    stopped first). In a session it is kept for later scenarios; else the caller stops it.
    A lab that does not come up is tried again, up to `tries` times in all (LabError)."""
    owner = _session or _Session(progress)
    owner.stop()
    for attempt in range(1, tries + 1):
        lab_ = Lab(load_topology(owner.write(spec)), progress=lambda m: progress(f"lab {spec['name']}: {m}"))
        t0 = time.monotonic()
        try:
            lab_.start()
            break
        except LabError as e:
            if attempt == tries:
                raise
            progress(f"lab {spec['name']} did not come up ({e}): starting it again")
    seconds = time.monotonic() - t0
    if _session is not None:
        _session.running, _session.spec = lab_, spec
    else:
        shutil.rmtree(owner.dir, ignore_errors=True)
    return lab_, seconds


@contextlib.contextmanager
def lab(spec: dict, progress):
    """The lab for `spec`: the session's running one if it is that network, else a new one."""
    if _session is not None and _session.spec == spec:
        yield _session.running
        return
    running, _ = start(spec, progress, tries=2)
    try:
        yield running
    finally:
        if _session is None:
            running.stop()
