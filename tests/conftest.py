"""Session-wide guard: no test may leave a lab namespace, link or process behind."""
from __future__ import annotations

import os
import subprocess

import pytest


def _view(root: str = "") -> tuple[int, int] | None:
    """Which /run/packetwalk a process sees (isolated labs each mount their own)."""
    for path in ("/run/packetwalk", "/run"):
        try:
            st = os.stat(root + path)
            return st.st_dev, st.st_ino
        except OSError:
            continue
    return None


def _ours() -> dict[str, set[str]]:
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.splitlines()
    procs, mine = set(), _view()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
        if name in ("ovsdb-server", "ovs-vswitchd", "tcpdump") and state != "Z" \
                and _view(f"/proc/{pid}/root") == mine:     # not another worker's isolated lab
            procs.add(f"{name}[{pid}]")
    return {
        "namespaces": {n.split()[0] for n in ns if n.startswith("pw-")},
        "links": {l.split(":")[1].strip().split("@")[0] for l in links
                  if l.split(":")[1].strip().startswith("pw-")},
        "processes": procs,
    }


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    before = _ours()
    yield
    after = _ours()
    left = {kind: sorted(after[kind] - before[kind]) for kind in after if after[kind] - before[kind]}
    assert not left, f"the tests left these behind: {left}"


def pytest_collection_modifyitems(config, items):
    """Tests marked root need root: say so instead of failing obscurely."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, Open vSwitch)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
