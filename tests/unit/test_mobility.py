"""Make-before-break, as data: a port in transit is held at its old place, the new place
comes first, the old place forwards to the new one for a while; and the limits on punts."""
from __future__ import annotations

from controller.flows import Group, Output
from controller.intent import parse_intent
from controller.mobility import HOLD, PORT_GROUP_BASE, deliver_by_group, locations, mobility_flows, watched_macs
from controller.model import Hypervisor, Network
from controller.pipeline import hypervisor_flows
from controller.ratelimit import LogLimiter, TokenBucket
from controller.tables import REG_FROM_TUNNEL, Table

MAC = "00:50:56:00:00:01"


def network():
    n = Network(parse_intent({
        "logical_switches": [{"name": "web", "vni": 5001, "subnet": "10.1.1.0/24"}],
        "logical_ports": [{"name": "vm1", "switch": "web", "mac": MAC, "ips": ["10.1.1.11"]},
                          {"name": "vm2", "switch": "web", "mac": "00:50:56:00:00:02", "ips": ["10.1.1.12"]}]}))
    for name, address in (("hv1", "169.254.77.2"), ("hv2", "169.254.77.3"), ("hv3", "169.254.77.4")):
        n.hypervisors[name] = Hypervisor(name, address)
    n.hypervisors["hv1"].tunnels = {"hv2": 20, "hv3": 30}
    n.hypervisors["hv2"].tunnels = {"hv1": 10, "hv3": 30}
    n.hypervisors["hv3"].tunnels = {"hv1": 10, "hv2": 20}
    n.set_interfaces(n.hypervisors["hv1"], {"vm1": (1, "vm1")})
    n.set_interfaces(n.hypervisors["hv3"], {"vm2": (2, "vm2")})
    return n


def move(n, to: str | None, now: float):
    before = locations(n)
    n.set_interfaces(n.hypervisors["hv1"], {})
    if to:
        n.set_interfaces(n.hypervisors[to], {"vm1": (7, "vm1")})
    return n.moves.observe(before, locations(n), now)


def l2(n, hv: str, mac: str = MAC):
    return {f.priority: f for f in hypervisor_flows(n, n.hypervisors[hv])
            if f.table == Table.L2_LOOKUP and dict(f.match).get("eth_dst") == mac}


def test_in_transit_the_old_place_holds_and_the_others_keep_sending_there():
    n = network()
    assert move(n, None, now=10.0)
    assert [(m.old, m.new) for m in n.moves] == [("hv1", None)]
    assert l2(n, "hv1")[110].actions[-1] == Output("controller")          # held by the controller
    assert l2(n, "hv3")[110].actions == (Output(10),)                     # still to hv1
    assert dict(l2(n, "hv3")[110].match)[REG_FROM_TUNNEL] == 0
    still = [f for f in hypervisor_flows(n, n.hypervisors["hv1"]) if f.owner == "port:vm1"]
    assert {f.table for f in still} == {Table.CLASSIFY, Table.PORT_SECURITY}   # it may still send, from its own


def test_landed_the_new_place_comes_first_and_the_old_one_forwards_there():
    n = network()
    move(n, None, now=10.0)
    assert move(n, "hv2", now=10.1)
    assert [(m.old, m.new) for m in n.moves] == [("hv1", "hv2")] and n.moves.arrived_at() == {"hv2"}
    assert l2(n, "hv1")[110].actions == (Output(20),)                     # old place -> new VTEP
    assert l2(n, "hv3")[100].actions == (Output(20),)                     # everyone else: the new place
    assert l2(n, "hv2")[100].actions == (Group(PORT_GROUP_BASE + 7),)     # local, through its failover group
    assert n.moves.expire(10.1 + HOLD) and not list(n.moves) and 110 not in l2(n, "hv1")


def test_back_where_it_was_is_no_move():
    n = network()
    before = locations(n)
    n.set_interfaces(n.hypervisors["hv1"], {})
    n.moves.observe(before, locations(n), 1.0)
    again = locations(n)
    n.set_interfaces(n.hypervisors["hv1"], {"vm1": (1, "vm1")})
    n.moves.observe(again, locations(n), 1.2)
    assert not list(n.moves)


def test_local_delivery_goes_through_the_ports_group_only():
    n = network()
    hv = n.hypervisors["hv1"]
    flows = deliver_by_group(hypervisor_flows(n, hv), hv)
    assert l2(n, "hv1")[100].actions == (Group(PORT_GROUP_BASE + 1),)
    assert not any(isinstance(a, Group) for f in flows if f.table != Table.L2_LOOKUP for a in f.actions)
    assert mobility_flows(n, hv)[0].table == Table.IN_TRANSIT


def test_a_token_bucket_allows_its_burst_then_its_rate():
    b = TokenBucket(rate=10, burst=5)
    assert sum(b.allow(0.0) for _ in range(20)) == 5 and b.refused == 15
    assert sum(b.allow(1.0) for _ in range(20)) == 5            # refilled to the burst, no more
    assert sum(b.allow(1.1) for _ in range(20)) == 1


def test_logging_is_one_line_per_cause_per_interval_with_a_count():
    log = LogLimiter(interval=10)
    lines = [log.note("storm", "x", t / 100) for t in range(0, 2500)]      # 100 a second for 25 s
    said = [line for line in lines if line]
    assert len(said) == 3 and said[0] == "x" and "and 999 more" in said[1]
    assert log.note("other", "y", 24.0) == "y"


def test_a_move_through_the_engine_is_what_the_full_recompute_says_and_lands_in_stage_0():
    """In transit, landed, expired: the engine's incremental flows equal the full recompute
    at each step; the landing's plan puts the new place first, and `made` follows its stage 0."""
    from controller.engine import Engine
    from controller.dispatch import Dispatch
    from controller.reconcile import Reconciler
    n = network()
    n.hypervisors["hv2"].attachments.clear()
    engine, rec = Engine(n), Reconciler()
    engine.update()
    for hv in n.hypervisors:
        rec.read(hv, set(), engine.flows(hv))
    rec.plan()

    def step():
        rec.feed(engine.update())
        for hv in n.hypervisors.values():
            assert engine.flows(hv.name) == {f.cookie: f for f in hypervisor_flows(n, hv)}
        return rec.plan()

    move(n, None, now=10.0)
    step()
    before = locations(n)
    n.set_interfaces(n.hypervisors["hv2"], {"vm1": (7, "vm1")})
    assert n.moves.observe(before, locations(n), 10.2)
    plan = step()
    assert plan.first == {"hv2"} and {u.hypervisor for u in plan.stages[0]} == {"hv2"}
    assert "hv1" in {u.hypervisor for u in plan.stages[1]}            # the old place forwards after
    d = Dispatch()
    sends = d.start(plan)
    assert d.made == 0 and {s.hypervisor for s in sends} == {"hv2"}
    d.confirm("hv2", sends[0].bundle_id)
    assert d.made == plan.seq
    assert n.moves.expire(10.2 + HOLD)
    step()
    assert not any(f.owner.startswith("move:") for hv in n.hypervisors for f in engine.flows(hv).values())


def test_watching_one_hypervisors_ports_sees_every_move_that_watching_all_sees():
    """The app looks only at the ports a hypervisor's change can move (watched_macs), not at
    every VM: after any sequence of one-hypervisor changes (plugs, unplugs, a port in two
    places), the moves are the ones a look at all ports finds."""
    import random
    rnd = random.Random(7)
    whole, part = network(), network()
    names, moving = ["hv1", "hv2", "hv3"], 0
    for step in range(300):
        hv = rnd.choice(names)
        interfaces = {f"{vm}@{hv}": (rnd.randint(1, 50), vm) for vm in ("vm1", "vm2") if rnd.random() < 0.4}
        now = step * 0.5
        before = locations(whole)
        whole.set_interfaces(whole.hypervisors[hv], interfaces, now)
        whole.moves.observe(before, locations(whole), now)
        watched = watched_macs(part, part.hypervisors[hv], interfaces)
        before = locations(part, watched)
        part.set_interfaces(part.hypervisors[hv], interfaces, now)
        part.moves.observe(before, locations(part, watched), now)
        if step % 7 == 0:
            whole.moves.expire(now)
            part.moves.expire(now)
        assert whole.moves.by_port == part.moves.by_port, step
        moving += any(m.both for m in whole.moves) + 10 * any(m.new and not m.both for m in whole.moves)
    assert moving > 10        # moves, and ports in two places, did happen
