"""A live migration loses nothing, replayed into fake tables (test_reconcile.py's Lab): after
every stage the controller sends, a frame to the moving VM from every other VM on its switch
is walked through the tables as they are then (known unicast, the tunnels between the
hypervisors, each VM port's failover group) and must reach the place where the VM runs."""
from __future__ import annotations

import pytest

from controller.flows import Goto, Group, Output
from controller.mobility import PORT_GROUP_BASE, locations
from controller.tables import REG_FROM_TUNNEL, Table
from test_reconcile import Lab

VM, MAC = "vm3", "00:50:56:00:00:03"          # on switch web (VNI 5001), on hv2
VNI = 5001
SENDERS = ("vm1", "vm5", "vm7")               # web's other VMs: hv1, hv3, hv4


@pytest.fixture
def lab() -> Lab:
    lab = Lab()
    for hv in lab.tables:
        lab.connect(hv)
    return lab


def change(lab, edit, now):
    """A change to the ports (edit(lab)), seen as the app sees it: moves observed, then converged;
    a snapshot of every table after each stage."""
    before = locations(lab.net)
    edit(lab)
    lab.net.moves.observe(before, locations(lab.net), now)
    snaps = []
    lab.converge(after_stage=lambda l: snaps.append({h: dict(t.flows) for h, t in l.tables.items()}))
    assert lab.converged()
    return snaps


def lookup(lab, snapshot, hv, fields):
    """The flow of table L2_LOOKUP that a frame with `fields` matches in `snapshot` (highest priority)."""
    best = None
    for (table, priority, match), cookie in snapshot[hv].items():
        if table == Table.L2_LOOKUP and all(fields.get(k) == v for k, v in match):
            if best is None or priority > best[0]:
                best = (priority, lab.sent[cookie])
    return best[1]


def walk(lab, snapshot, hv, in_port, from_tunnel, live, depth=0) -> set:
    """Where a frame to MAC goes from `hv`: {(hypervisor, ofport)} delivered, "held" (the
    controller), "flood" (unknown unicast). `live`: the VM ports whose link is up."""
    assert depth < 4, "a loop"
    net = lab.net
    flow = lookup(lab, snapshot, hv, {REG_FROM_TUNNEL: int(from_tunnel), "tunnel_id": VNI, "eth_dst": MAC,
                                      "in_port": in_port})
    out = set()
    tunnel_to = {port: remote for remote, port in net.hypervisors[hv].tunnels.items()}
    for a in flow.actions:
        port = a.port if isinstance(a, Output) else None
        if isinstance(a, Group):
            port = a.id - PORT_GROUP_BASE
            if (hv, port) not in live:
                out.add("held")              # the failover group's other bucket: the controller
                continue
        if isinstance(a, Goto):
            out.add("flood")
        elif port == "controller":
            out.add("held")
        elif port == "in_port" or port in tunnel_to:
            if port == in_port:
                continue                     # OpenFlow never sends a frame back where it came from
            remote = tunnel_to[in_port if port == "in_port" else port]
            back = net.hypervisors[remote].tunnels[hv]
            out |= walk(lab, snapshot, remote, back, True, live, depth + 1)
        elif port is not None:
            out.add((hv, port) if (hv, port) in live else "dropped")
    return out


def senders(lab):
    return [(hv, a.ofport) for hv, h in lab.net.hypervisors.items() for a in h.attachments.values()
            if a.lport in SENDERS]


def ofport(lab, hv):
    return next(a.ofport for a in lab.net.hypervisors[hv].attachments.values() if a.lport == VM)


def test_a_live_migration_delivers_every_frame_at_every_stage(lab):
    """vm3 goes from hv2 to hv4 as a hypervisor moves a VM: its port appears on hv4 (same
    iface-id) while it runs on hv2, it switches over, then its port on hv2 goes. While it is
    attached in both places, both get every frame; before and after, the one it runs in."""
    old = ("hv2", ofport(lab, "hv2"))
    snaps = change(lab, lambda l: l.attach("hv4", VM, converge=False), now=1.0)
    new = ("hv4", ofport(lab, "hv4"))
    assert [(m.old, m.new, m.both) for m in lab.net.moves] == [("hv2", "hv4", True)]
    assert set(lab.stages[-len(snaps)]) == {"hv4"}                     # the new place first
    for snap in snaps:                                                  # it still runs on hv2
        for hv, port in senders(lab):
            assert old in walk(lab, snap, hv, port, False, live={old})
    for hv, port in senders(lab):                                       # switched over: nothing sent
        assert new in walk(lab, snaps[-1], hv, port, False, live={new})
    snaps = change(lab, lambda l: l.detach("hv2", VM, converge=False), now=1.5)
    assert [(m.old, m.new, m.both) for m in lab.net.moves] == [("hv2", "hv4", False)]
    for snap in snaps:
        for hv, port in senders(lab):
            assert new in walk(lab, snap, hv, port, False, live={new})
    assert lab.net.wanted_tunnels(lab.net.hypervisors["hv2"]).keys() >= {"hv4"}


def test_in_transit_then_landed_never_bounces_a_frame_back_where_it_came_from(lab):
    """The port leaves hv2 first, then appears on hv4 (where vm7 sends from): at no stage
    does hv4 send to hv2 what hv2 sends straight back (OpenFlow drops it)."""
    old = ("hv2", ofport(lab, "hv2"))
    snaps = change(lab, lambda l: l.detach("hv2", VM, converge=False), now=1.0)
    for snap in snaps:
        for hv, port in senders(lab):
            assert walk(lab, snap, hv, port, False, live=set()) == {"held"}
    snaps = change(lab, lambda l: l.attach("hv4", VM, converge=False), now=1.2)
    new = ("hv4", ofport(lab, "hv4"))
    assert [(m.old, m.new, m.both) for m in lab.net.moves] == [("hv2", "hv4", False)] and old != new
    for snap in snaps:                      # held (sent on once it landed) or there; never nowhere
        for hv, port in senders(lab):
            assert walk(lab, snap, hv, port, False, live={new}) in ({"held"}, {new})
    assert all(walk(lab, snaps[0], "hv4", p, False, live={new}) == {new} for h, p in senders(lab) if h == "hv4")


def test_a_frame_the_new_place_still_sends_to_the_old_one_comes_back(lab):
    """A datapath acting on the flows of a moment ago (its cache not yet revalidated) may
    still send to the old place what the new place should deliver: the old one sends it back."""
    change(lab, lambda l: l.detach("hv2", VM, converge=False), now=1.0)
    stale = {h: dict(t.flows) for h, t in lab.tables.items()}
    change(lab, lambda l: l.attach("hv4", VM, converge=False), now=1.2)
    new = ("hv4", ofport(lab, "hv4"))
    now = {h: dict(t.flows) for h, t in lab.tables.items()}
    back = lab.net.hypervisors["hv2"].tunnels["hv4"]
    fields = {REG_FROM_TUNNEL: 0, "tunnel_id": VNI, "eth_dst": MAC, "in_port": 7}
    assert lookup(lab, stale, "hv4", fields).actions == (Output(lab.net.hypervisors["hv4"].tunnels["hv2"]),)
    assert walk(lab, now, "hv2", back, True, live={new}) == {new}


def test_the_old_place_keeps_its_tunnel_to_the_new_one_until_the_move_is_over(lab):
    """vm7 is hv4's only VM: once it has moved to hv1, hv4 shares no switch with anyone, yet
    it keeps its tunnel to hv1 (it forwards what still arrives there) until the move expires."""
    from controller.mobility import HOLD
    net = lab.net
    change(lab, lambda l: l.attach("hv1", "vm7", converge=False), now=1.0)
    change(lab, lambda l: l.detach("hv4", "vm7", converge=False), now=1.1)
    assert not lab.net.hypervisors["hv4"].attachments
    assert "hv1" in net.wanted_tunnels(net.hypervisors["hv4"]) and "hv4" in net.wanted_tunnels(net.hypervisors["hv1"])
    assert net.moves.expire(1.1 + HOLD)
    changes = lab.engine.update()
    assert {"hv1", "hv4"} <= changes.tunnels                  # asked again: now it may go
    assert net.wanted_tunnels(net.hypervisors["hv4"]) == {}
