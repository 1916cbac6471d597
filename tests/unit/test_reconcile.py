"""The reconciler and the dispatch, end to end without a switch: the engine's changes become
plans, the plans bundles of OpenFlow messages, and the messages are replayed into fake
tables (fakeoftable.py) that must end up holding exactly the wanted flows."""
import pytest

from controller import openflow
from controller.convergence import Convergence
from controller.dispatch import Dispatch
from controller.intent import parse_intent
from controller.l2 import unicast_local
from controller.model import Hypervisor, Network
from controller.report import database_view
from controller.tables import Table
from fakeoftable import DP, FakeOFTable

HVS = ("hv1", "hv2", "hv3", "hv4")
INTENT = {
    "logical_switches": [{"name": "web", "vni": 5001, "subnet": "10.1.1.0/24"},
                         {"name": "app", "vni": 5002, "subnet": "10.1.2.0/24"}],
    "logical_ports": [{"name": f"vm{i}", "switch": "web" if i % 2 else "app", "mac": f"00:50:56:00:00:{i:02x}",
                       "ips": [f"10.1.{1 if i % 2 else 2}.{10 + i}"]} for i in range(1, 9)],
    "logical_routers": [{"name": "dlr", "interfaces": [{"switch": "web", "ip": "10.1.1.1"},
                                                       {"switch": "app", "ip": "10.1.2.1"}]}],
}
PLACEMENT = {"hv1": ["vm1", "vm2"], "hv2": ["vm3", "vm4"], "hv3": ["vm5", "vm6"], "hv4": ["vm7"]}


class Lab:
    """The controller's convergence (engine, reconciler, dispatch: what the app runs) and
    fake br-ints; the messages each bundle becomes go to the fake switch, its commit reply
    comes back, as the app's links and handlers would do."""
    def __init__(self):
        self.net = Network(parse_intent(INTENT))
        self.conv = Convergence(self.net)
        self.engine, self.rec, self.dispatch = self.conv.engine, self.conv.rec, self.conv.dispatch
        self.tables = {h: FakeOFTable() for h in HVS}
        self.ofport = 0
        for i, name in enumerate(HVS, start=1):
            hv = self.net.hypervisors[name] = Hypervisor(name, f"169.254.77.{i}", f"192.168.50.{i}")
            for vm in PLACEMENT[name]:
                self.attach(name, vm, converge=False)
        for hv in self.net.hypervisors.values():
            hv.tunnels = {o: 100 + HVS.index(o) for o in self.net.wanted_tunnels(hv)}
        self.stages = []      # per stage sent: {hv: (flows added, cookies deleted)}
        self.sent = {}        # cookie -> every flow ever sent (to read a table snapshot back)

    def attach(self, hv, vm, converge=True):
        h = self.net.hypervisors[hv]
        self.ofport += 1
        self.net.set_interfaces(h, {**h.interfaces, f"{vm}@{hv}": (self.ofport, vm)})
        if converge:
            self.converge()

    def detach(self, hv, vm, converge=True):
        h = self.net.hypervisors[hv]
        self.net.set_interfaces(h, {n: i for n, i in h.interfaces.items() if i[1] != vm})
        if converge:
            self.converge()

    def connect(self, hv):
        """OpenFlow up, flows read back (a flow-stats reply)."""
        self.conv.read(hv, self.tables[hv].cookies())
        self.converge()

    def converge(self, after_stage=None):
        sends = self.conv.converge().sends
        while sends:
            self.stages.append({s.hypervisor: s.update for s in sends})
            self.sent.update((f.cookie, f) for s in sends for f in s.update.add)
            replies = []
            for s in sends:
                table = self.tables[s.hypervisor]
                for msg in openflow.bundle(DP, s.bundle_id, openflow.update_messages(DP, s.update)):
                    table.send(msg)
                [reply] = table.replies
                table.replies.clear()
                assert openflow.is_commit_reply(reply) and reply.bundle_id == s.bundle_id
                replies.append((s.hypervisor, reply.bundle_id))
            if after_stage:
                after_stage(self)
            sends = [n for hv, b in replies for n in self.conv.confirmed(hv, b).sends]

    def converged(self) -> bool:
        return all(t.holds_exactly(self.engine.flows(h)) for h, t in self.tables.items())

    def flow_mods(self) -> int:
        return sum(len(u) for stage in self.stages for u in stage.values())


@pytest.fixture
def lab() -> Lab:
    lab = Lab()
    for hv in HVS:
        lab.connect(hv)
    lab.stages.clear()
    return lab


def test_cold_connect_programs_every_table_exactly(lab):
    assert lab.converged()
    assert all(len(t.flows) > 10 for t in lab.tables.values())
    assert lab.dispatch.realized == lab.dispatch.generation


def test_reconnect_with_stale_flows_sends_only_the_difference(lab):
    table = lab.tables["hv2"]
    stale = {(int(Table.L2_LOOKUP), 100, (("eth_dst", "00:50:56:00:00:99"),)): 0x7077000000000001,
             (int(Table.CLASSIFY), 100, (("in_port", 77),)): 0x7077000000000002}
    missing = sorted(table.flows)[:3]
    for key in missing:
        del table.flows[key]
    table.flows.update(stale)
    lab.rec.forget("hv2")                       # the connection dropped; it comes back
    lab.connect("hv2")
    assert lab.converged()
    assert [set(s) for s in lab.stages] == [{"hv2"}, {"hv2"}]    # its adds, then its deletes
    assert lab.flow_mods() == len(missing) + len(stale)


def test_a_change_then_its_revert_leaves_every_table_exactly_as_it_was(lab):
    before = {h: dict(t.flows) for h, t in lab.tables.items()}
    lab.attach("hv4", "vm8")
    assert lab.converged() and lab.tables["hv4"].flows != before["hv4"]
    lab.detach("hv4", "vm8")
    assert lab.converged()
    assert {h: t.flows for h, t in lab.tables.items()} == before


def test_one_attach_is_one_bundle_per_hypervisor_it_touches_and_no_needless_delete(lab):
    lab.attach("hv1", "vm8")
    assert lab.converged()
    assert [sorted(s) for s in lab.stages] == [["hv1"], ["hv2", "hv3", "hv4"]]
    assert all(not u.delete for s in lab.stages for u in s.values())   # changed flows replaced in place


def test_a_vm_move_is_made_before_it_is_broken(lab):
    """vm3 moves from hv2 to hv4 (attached there, detached here, one change): hv4 is
    programmed first; the others point at hv4 only once it is; hv2 loses vm3's port last."""
    old = next(a for a in lab.net.hypervisors["hv2"].attachments.values() if a.lport == "vm3")
    before = {h: dict(t.flows) for h, t in lab.tables.items()}
    snapshots = []
    hv4 = lab.net.hypervisors["hv4"]
    lab.net.set_interfaces(hv4, {**hv4.interfaces, "vm3@hv4": (99, "vm3")})
    lab.detach("hv2", "vm3", converge=False)
    lab.converge(after_stage=lambda l: snapshots.append({h: dict(t.flows) for h, t in l.tables.items()}))
    assert lab.converged() and len(snapshots) == 3

    def unicast(hv, snapshot):
        """Where hv's table sends a frame to vm3's MAC from a local VM: its output port."""
        for (table, _, match), cookie in snapshot[hv].items():
            if table == Table.L2_LOOKUP and dict(match).get("eth_dst") == old.mac \
                    and dict(match).get("reg0", 0) == 0:
                return next(f for f in lab.engine.flows(hv).values() if f.cookie == cookie) \
                    if cookie in lab.engine.flows(hv) else cookie
        return None
    old_port = (int(Table.CLASSIFY), 100, (("in_port", old.ofport),))
    first, second, third = snapshots
    assert list(lab.stages[0]) == ["hv4"]
    assert unicast("hv4", first) is not None                                  # hv4 delivers it locally...
    assert all(first[h] == before[h] for h in ("hv1", "hv2", "hv3"))          # ...before anyone else moves
    for hv in ("hv1", "hv3"):
        assert unicast(hv, second).actions[0].port == 100 + HVS.index("hv4")  # then they tunnel to hv4
    assert old_port in second["hv2"]            # hv2 keeps vm3's old port until everyone points at hv4
    assert old_port not in third["hv2"]


def test_an_error_makes_the_controller_read_the_switch_again(lab):
    """The switch refused a bundle (or lost flows): after the re-read, the difference."""
    table = lab.tables["hv3"]
    lost = sorted(table.flows)[:5]
    for key in lost:
        del table.flows[key]
    lab.rec.forget("hv3")
    lab.connect("hv3")
    assert lab.converged() and lab.flow_mods() == len(lost)


def test_a_restarted_controller_keeps_what_points_at_hypervisors_it_has_not_read(lab):
    """A restarted controller whose sync wait ran out has read hv1 and hv2, not hv3 and hv4
    yet: those are in its database (the Hypervisor and Port_Status rows it reported), and
    not read is not down. hv1 and hv2 keep every flow and tunnel toward them: nothing is
    deleted or re-pointed, no tunnel port goes."""
    for hv in lab.net.hypervisors.values():
        hv.dpid, hv.ovsdb_connected = HVS.index(hv.name) + 1, True     # a running lab reports them up
    rows = database_view(lab.net, set(HVS), lambda h: None, lambda p: True)
    before = {h: dict(t.flows) for h, t in lab.tables.items()}
    old = lab.net
    lab.net = Network(parse_intent(INTENT))                               # the restart
    lab.conv = Convergence(lab.net)
    lab.engine, lab.rec, lab.dispatch = lab.conv.engine, lab.conv.rec, lab.conv.dispatch
    for name in ("hv1", "hv2"):                                           # read: their OVSDB, their flows
        was = old.hypervisors[name]
        hv = lab.net.hypervisors[name] = Hypervisor(name, was.address, was.vtep_ip, ovsdb_connected=True)
        lab.net.set_interfaces(hv, was.interfaces)
        hv.tunnels, hv.tunnel_state = dict(was.tunnels), {o: "up" for o in was.tunnels}
    assert sorted(lab.net.restore(rows["Hypervisor"], rows["Port_Status"])) == ["hv3", "hv4"]
    for name in ("hv1", "hv2"):
        lab.conv.read(name, lab.tables[name].cookies())
    lab.converge()
    assert lab.tables["hv1"].flows == before["hv1"] and lab.tables["hv2"].flows == before["hv2"]
    assert lab.flow_mods() == 0
    assert lab.rec.requested == {}          # their tunnel ports are what they want: none asked


def test_realized_waits_for_every_hypervisor_of_the_plan(lab):
    d = Dispatch()
    lab.attach("hv1", "vm8", converge=False)
    lab.rec.feed(lab.engine.update())
    gen = d.change()
    sends = d.start(lab.rec.plan())
    assert d.realized == gen - 1 and [s.hypervisor for s in sends] == ["hv1"]
    sends = d.confirm("hv1", sends[0].bundle_id)
    assert sorted(s.hypervisor for s in sends) == ["hv2", "hv3", "hv4"] and d.realized == gen - 1
    for s in sends[:2]:
        assert d.confirm(s.hypervisor, s.bundle_id) == []
    assert d.realized == gen - 1
    d.fail(sends[2].hypervisor)                  # hv4 went down: nothing more to wait for
    assert d.realized == gen and d.idle


def test_tunnels_are_asked_once_until_the_database_shows_them(lab):
    net = lab.net
    lab.detach("hv4", "vm7")
    for hv in net.hypervisors.values():
        hv.ovsdb_connected = True
        hv.tunnel_state = {o: "up" for o in net.wanted_tunnels(hv)}
    assert lab.rec.tunnels(net, HVS) == []
    lab.attach("hv4", "vm7", converge=False)
    changes = lab.engine.update()
    asked = {u.hypervisor: u.wanted for u in lab.rec.tunnels(net, changes.tunnels)}
    assert asked == {"hv1": {"hv2": "192.168.50.2", "hv3": "192.168.50.3", "hv4": "192.168.50.4"},
                     "hv2": {"hv1": "192.168.50.1", "hv3": "192.168.50.3", "hv4": "192.168.50.4"},
                     "hv3": {"hv1": "192.168.50.1", "hv2": "192.168.50.2", "hv4": "192.168.50.4"},
                     "hv4": {"hv1": "192.168.50.1", "hv2": "192.168.50.2", "hv3": "192.168.50.3"}}
    assert lab.rec.tunnels(net, HVS) == []                                   # asked already
    for name, wanted in asked.items():
        net.hypervisors[name].tunnel_state = {o: "up" for o in wanted}
    assert lab.rec.tunnels(net, HVS) == [] and lab.rec.requested == {}


def test_a_change_undone_before_it_is_sent_sends_nothing(lab):
    """Changes pile up while a plan is in flight: a port that goes and comes back (same
    interface, same flows) in between costs no flow-mod at all."""
    hv1 = lab.net.hypervisors["hv1"]
    before = dict(hv1.interfaces)
    lab.net.set_interfaces(hv1, {n: i for n, i in before.items() if i[1] != "vm1"})
    lab.rec.feed(lab.engine.update())
    lab.net.set_interfaces(hv1, before)
    lab.rec.feed(lab.engine.update())
    assert lab.rec.plan() is None and lab.converged()


def test_realized_follows_each_plan_under_a_stream_of_changes():
    """Changes keep coming while plans are in flight: each generation is realized as soon as
    the plan carrying it is confirmed, not only when the stream stops."""
    d = Dispatch()
    g1 = d.change()
    d.wait_for(("pending",))
    sends = d.start(_plan(1))
    g2 = d.change()                        # arrives while plan 1 is in flight
    d.wait_for(("pending",))
    assert d.realized == g1 - 1
    d.confirm(sends[0].hypervisor, sends[0].bundle_id)
    assert d.idle and d.realized == g2 - 1        # g1 is realized, g2 still pending
    sends = d.start(_plan(2))
    g3 = d.change()
    d.wait_for(("pending",))
    d.confirm(sends[0].hypervisor, sends[0].bundle_id)
    assert d.realized == g3 - 1 >= g2


def _plan(seq):
    from controller.reconcile import FlowUpdate, Plan
    return Plan(seq, ((FlowUpdate("hv1", (), (seq,)),),))


def test_the_installed_count_is_the_installed_flows_counted(lab):
    """`/v1/hypervisors` counts each hypervisor's installed flows without listing them."""
    def listed(hv):
        return len([c for c in lab.engine.flows(hv) if c in lab.rec.installed(hv)])
    lab.attach("hv1", "vm8", converge=False)
    lab.rec.feed(lab.engine.update())         # wanted moved on, nothing sent yet
    assert all(lab.conv.installed_count(h) == listed(h) for h in HVS)
    assert lab.conv.installed_count("hv1") < len(lab.engine.flows("hv1"))
    lab.converge()
    assert all(lab.conv.installed_count(h) == listed(h) == len(lab.engine.flows(h)) for h in HVS)
