"""Clean up like a guest: stop only what the lab started, by pid; remove only its own
namespaces and links (all named with the PREFIX).

The lab writes what it starts into a manifest as it goes, so that `packetwalk lab clean`
can undo a crashed run exactly.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from dataplane.hypervisor import DAEMONS, start_time, stop_pid

PREFIX = "pw-"
MANIFEST = "manifest.json"


class Manifest:
    def __init__(self, rundir: Path):
        self.path = Path(rundir) / MANIFEST
        self.data = {"pids": []}
        if self.path.exists():
            self.data = json.loads(self.path.read_text())

    def add_pid(self, pid: int, comm: str) -> None:
        """Remember a process we started, with its start time: a reused pid is not ours."""
        self.add_pids([(pid, comm)])

    def add_pids(self, processes: list[tuple[int, str]]) -> None:
        self.data["pids"] += [[pid, comm, start_time(pid)] for pid, comm in processes]
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data))


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def our_netns() -> list[str]:
    return [line.split()[0] for line in _run("ip", "netns", "list").splitlines()
            if line.startswith(PREFIX)]


def our_links() -> list[str]:
    names = [line.split(":")[1].strip().split("@")[0] for line in _run("ip", "-o", "link", "show").splitlines()]
    return [n for n in names if n.startswith(PREFIX)]


def leftovers(rundir: Path) -> list[str]:
    """What a previous lab left on this machine (empty when the machine is clean)."""
    found = [f"namespace {n}" for n in our_netns()] + [f"link {n}" for n in our_links()]
    if (Path(rundir) / MANIFEST).exists():
        found.append(f"manifest {Path(rundir) / MANIFEST}")
    return found


def clean(rundir: Path) -> list[str]:
    """Undo a lab: its processes by pid, its namespaces and links by name. Returns what it did."""
    rundir = Path(rundir)
    done = []
    for pidfile in sorted(rundir.rglob("*.pid")):     # a lab's hypervisors, the scale bench's fleet
        daemon = pidfile.stem
        if daemon in DAEMONS:
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            if stop_pid(pid, daemon):
                done.append(f"stopped {daemon} {pid} ({pidfile.parent.name})")
    manifests = [Manifest(path.parent) for path in sorted(rundir.rglob(MANIFEST))]
    for manifest in manifests:
        for pid, comm, started in reversed(manifest.data["pids"]):
            if stop_pid(pid, comm, started=started):
                done.append(f"stopped {comm} {pid}")
    for name in our_netns():
        _run("ip", "netns", "del", name)
        done.append(f"deleted namespace {name}")
    for name in our_links():
        _run("ip", "link", "del", name)
        done.append(f"deleted link {name}")
    for manifest in manifests:
        manifest.path.unlink(missing_ok=True)
    return done
