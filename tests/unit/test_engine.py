"""The incremental engine against its oracle, the full recompute: after any sequence of
changes (ports attached, detached and moved, bindings learned and dropped, tunnels coming
and going, hypervisors down and up, switches, routers and routes changed), the flows the
engine keeps, and the table its deltas build, are exactly what a full recompute says; and
the reconciler's plans, replayed as OpenFlow messages into fake switches (some of them
losing flows or holding stale ones, then read again), leave every switch holding exactly that."""
import copy

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from controller import openflow
from controller.engine import Engine
from controller.intent import parse_intent
from controller import security
from controller.model import BindingConflict, Hypervisor, Network
from controller.pipeline import hypervisor_flows, layered_flows
from controller.reconcile import Reconciler
from fakeoftable import DP, FakeOFTable

HVS = ("hv1", "hv2", "hv3", "hv4")
VMS = ("v1", "v2", "v3", "v4", "v5", "v6")
SWITCHES = [{"name": "a", "vni": 5001, "subnet": "10.1.1.0/24"},
            {"name": "b", "vni": 5002, "subnet": "10.1.2.0/24"},
            {"name": "c", "vni": 5003, "subnet": "10.1.1.0/24"}]


def mac(i: int) -> str:
    return f"00:50:56:00:00:{i:02x}"


def ports(switch_of: dict) -> list[dict]:
    """v1, v2 configured; the others learn their IP."""
    out = []
    for i, vm in enumerate(VMS):
        sw = switch_of.get(vm, "a")
        subnet = "10.1.2" if sw == "b" else "10.1.1"
        out.append({"name": vm, "switch": sw, "mac": mac(i + 1),
                    **({"ips": [f"{subnet}.{20 + i}"]} if i < 2 else {"learn": True})})
    return out


BASE = {"logical_switches": SWITCHES, "logical_ports": ports({})}
R1 = {"name": "r1", "interfaces": [{"switch": "a", "ip": "10.1.1.1"}, {"switch": "b", "ip": "10.1.2.1"}],
      "routes": []}
INTENTS = [
    BASE,
    {**BASE, "logical_routers": [R1],
     "static_bindings": [{"switch": "a", "ip": "10.1.1.50", "mac": "00:50:56:00:99:01"}]},
    {**BASE, "logical_ports": ports({"v2": "b", "v4": "b", "v5": "c"}),
     "logical_routers": [{**R1, "routes": [{"prefix": "0.0.0.0/0", "next_hop": "10.1.2.13"}]},
                         {"name": "r2", "interfaces": [{"switch": "c", "ip": "10.1.1.1"}]}]},
    {"logical_switches": SWITCHES[:2], "logical_ports": ports({"v3": "b", "v6": "b"}),
     "logical_routers": [R1]},
    {**BASE, "vmac": "02:50:56:56:44:53", "logical_routers": [R1]},
    {**BASE, "arp_suppression": False, "logical_ports": ports({"v2": "b"}), "logical_routers": [R1]},
]


def intent(which: int):
    return parse_intent(copy.deepcopy(INTENTS[which]))


def full(net: Network, hv: str) -> dict:
    return {f.cookie: f for f in hypervisor_flows(net, net.hypervisors[hv])}


class Changes(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.net = Network(intent(1))
        for i, name in enumerate(HVS, start=1):
            self.net.hypervisors[name] = Hypervisor(name, f"169.254.77.{i}", f"192.168.50.{i}")
        self.engine = Engine(self.net)
        self.tables = {}          # hypervisor -> cookie -> flow, built from the deltas only
        self.tunnels_seen = {}    # hypervisor -> its wanted tunnels at the last update
        self.rec = Reconciler()
        self.switches = {h: FakeOFTable() for h in HVS}
        self.ofport = 10

    @rule(hv=st.sampled_from(HVS), vm=st.sampled_from(VMS + ("nobody",)))
    def attach(self, hv, vm):
        """An interface naming logical port `vm` appears on hv (on another hv too: a move)."""
        h = self.net.hypervisors[hv]
        self.ofport += 1
        self.net.set_interfaces(h, {**h.interfaces, f"{vm}@{hv}": (self.ofport, vm)})

    @rule(hv=st.sampled_from(HVS), which=st.integers(0, 10))
    def detach(self, hv, which):
        h = self.net.hypervisors[hv]
        if h.interfaces:
            name = sorted(h.interfaces)[which % len(h.interfaces)]
            self.net.set_interfaces(h, {n: i for n, i in h.interfaces.items() if n != name})

    @rule(vm=st.sampled_from(VMS), host=st.integers(10, 14))
    def learn(self, vm, host):
        for h in self.net.hypervisors.values():
            for a in h.attachments.values():
                if a.lport == vm:
                    subnet = self.net.switches[a.vni].subnet
                    try:
                        self.net.learn_binding(a, str(subnet.network_address + host))
                    except BindingConflict:
                        pass
                    return

    @rule(vni=st.sampled_from((5001, 5002, 5003)), host=st.integers(10, 14))
    def forget(self, vni, host):
        for (v, ip) in list(self.net.learned):
            if v == vni and ip.endswith(f".{host}"):
                self.net.forget_learned(v, ip)

    @rule(hv=st.sampled_from(HVS), keep=st.sets(st.sampled_from(HVS)), renumber=st.booleans())
    def tunnels(self, hv, keep, renumber):
        """The tunnel ports OVSDB reports: the wanted ones, some missing, some renumbered."""
        h = self.net.hypervisors[hv]
        wanted = sorted(self.net.wanted_tunnels(h))
        h.tunnels = {o: 100 + HVS.index(o) + (50 if renumber else 0) for o in wanted if o not in keep}

    @rule(hv=st.sampled_from(HVS), up=st.booleans())
    def up_down(self, hv, up):
        self.net.set_up(self.net.hypervisors[hv], up)

    @rule(hv=st.sampled_from(HVS))
    def vtep_moves(self, hv):
        h = self.net.hypervisors[hv]
        h.vtep_ip = "192.168.51.9" if h.vtep_ip != "192.168.51.9" else "192.168.50.9"

    @rule(which=st.integers(0, len(INTENTS) - 1))
    def change_intent(self, which):
        self.net.set_intent(intent(which))

    @rule(hv=st.sampled_from(HVS), lose=st.integers(0, 3), stale=st.booleans())
    def switch_trouble(self, hv, lose, stale):
        """A switch lost flows or holds one we no longer want (an error, a reconnect): the
        controller reads it again."""
        table = self.switches[hv]
        for key in sorted(table.flows)[:lose]:
            del table.flows[key]
        if stale:
            table.flows[(0, 100, (("in_port", 4242),))] = 0x7077000000000bad
        self.rec.forget(hv)

    @rule()
    def converge(self):
        """The engine takes the changes in; the reconciler folds them into what is pending
        (sent later, by `send`: changes pile up while a plan is in flight)."""
        changes = self.engine.update()
        self._feed(changes)
        for hv in changes.gone:
            self.tables.pop(hv, None)
        for hv, delta in changes.flows.items():
            table = self.tables.setdefault(hv, {})
            assert not delta.add.keys() & delta.delete
            assert delta.delete <= table.keys(), f"{hv}: deletes what it never added"
            assert not delta.add.keys() & table.keys(), f"{hv}: adds what it holds"
            for c in delta.delete:
                del table[c]
            table.update(delta.add)
        for hv, h in self.net.hypervisors.items():
            wanted = self.net.wanted_tunnels(h)
            if wanted != self.tunnels_seen.get(hv):
                assert hv in changes.tunnels, f"{hv}: wanted tunnels changed unnoticed"
                self.tunnels_seen[hv] = wanted
            if not h.up:
                assert hv not in self.engine.wanted
                continue
            want = full(self.net, hv)
            assert self.engine.flows(hv) == want, hv
            assert self.tables.get(hv, {}) == want, hv

    def _feed(self, changes):
        self.rec.feed(changes)
        for hv in changes.gone:
            self.rec.forget(hv)

    @rule()
    def send(self):
        """Switches not known are read; everything pending goes out as one plan."""
        for hv in self.engine.wanted:
            if hv not in self.rec.switches:
                self.rec.read(hv, self.switches[hv].cookies(), self.engine.flows(hv))
        plan = self.rec.plan()
        for stage in plan.stages if plan else ():
            for update in stage:
                table = self.switches[update.hypervisor]
                for msg in openflow.bundle(DP, plan.seq, openflow.update_messages(DP, update)):
                    table.send(msg)
                table.replies.clear()
        for hv in self.engine.wanted:
            assert self.switches[hv].holds_exactly(self.engine.flows(hv)), hv
            assert self.rec.installed(hv) == set(self.engine.flows(hv)), hv

    @invariant()
    def the_count_of_installed_wanted_flows_needs_no_walk(self):
        """/v1/hypervisors' row counts (O(1)) what a walk of the hypervisor's flows counts."""
        for hv in self.rec.switches:
            walked = self.rec.installed(hv) & self.engine.flows(hv).keys()
            assert self.rec.count(hv) == len(walked), hv
        assert self.rec.count("nowhere") == 0

    @invariant()
    def indexes_match_a_scan(self):
        net = self.net
        for h in net.hypervisors.values():
            reach = net.routed_vnis(h.vnis())
            scan = {o.name: o.vtep_ip for o in net.hypervisors.values()
                    if o is not h and o.vtep_ip and reach & o.vnis()}
            assert net.wanted_tunnels(h) == scan
        for vni in net.switches:
            assert [h.name for h in net.vtep_table(vni)] == sorted(
                h.name for h in net.hypervisors.values() if h.up and vni in h.vnis())


TestIncrementalEqualsFull = Changes.TestCase
TestIncrementalEqualsFull.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)


def network(which: int, placement) -> Network:
    net = Network(intent(which))
    for i, name in enumerate(HVS, start=1):
        hv = net.hypervisors[name] = Hypervisor(name, f"169.254.77.{i}", f"192.168.50.{i}")
        net.set_interfaces(hv, {f"{vm}@{name}": (j, vm) for j, vm in enumerate(placement[name], start=1)})
    for hv in net.hypervisors.values():
        hv.tunnels = {o: 100 + HVS.index(o) for o in net.wanted_tunnels(hv)}
    return net


def test_the_full_recompute_by_scope_is_what_l2_and_l3_say():
    """Two compositions of the same flow functions agree: by scope, and by layer (l2, l3,
    port security, mobility)."""
    net = network(2, {"hv1": ["v1"], "hv2": ["v2", "v3"], "hv3": ["v4", "v5"], "hv4": ["v6"]})
    [v3] = [a for a in net.hypervisors["hv2"].attachments.values() if a.lport == "v3"]
    net.learn_binding(v3, "10.1.1.13")
    for hv in net.hypervisors.values():
        by_layer = {f.cookie: f for f in layered_flows(net, hv)}
        assert full(net, hv.name) == by_layer


def test_one_attach_recomputes_only_what_it_touches():
    """A VM attached where its switch already is recomputes its port, its switch, and its
    MAC on the hypervisors that reach the switch: nothing else."""
    net = network(0, {"hv1": ["v1"], "hv2": ["v2"], "hv3": ["v3"], "hv4": ["v4"]})
    engine = Engine(net)
    cold = engine.update()
    assert cold.full == set(HVS) and cold.recomputed == sum(len(full(net, h)) for h in HVS)
    hv1 = net.hypervisors["hv1"]
    net.set_interfaces(hv1, {**hv1.interfaces, "v5@hv1": (9, "v5")})
    one = engine.update()
    assert one.full == set() and one.local == {"hv1"} and one.tunnels == set()
    # hv1: ingress + its port security + local unicast + ARP miss + 2 flood flows;
    # elsewhere: unicast to the tunnel
    guard = len(security.attachment_flows(net, hv1.attachments["v5@hv1"]))
    assert one.recomputed == 5 + guard + 3
    assert {h: (len(d.add), len(d.delete)) for h, d in one.flows.items()} == {
        "hv1": (4 + guard, 2), "hv2": (1, 0), "hv3": (1, 0), "hv4": (1, 0)}
