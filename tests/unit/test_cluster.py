"""Ownership among several controllers (controller/cluster.py): the same rule everywhere,
minimal movement, leases that never overlap."""
from __future__ import annotations

from collections import Counter

from controller.cluster import LEASE, MARGIN, Lease, decide, live, owned, rendezvous

HVS = [f"hv{i}" for i in range(200)]


def test_every_controller_computes_the_same_owner_and_the_load_is_spread():
    ctls = ["c1", "c2", "c3"]
    owners = {hv: rendezvous(hv, ctls) for hv in HVS}
    assert owners == {hv: rendezvous(hv, list(reversed(ctls))) for hv in HVS}
    counts = Counter(owners.values())
    assert set(counts) == set(ctls) and min(counts.values()) > 200 / 3 * 0.6


def test_losing_a_controller_moves_only_its_hypervisors_and_a_new_one_takes_a_share():
    before = {hv: rendezvous(hv, ["c1", "c2", "c3"]) for hv in HVS}
    after = {hv: rendezvous(hv, ["c1", "c2"]) for hv in HVS}
    assert {hv for hv in HVS if before[hv] != after[hv]} == {hv for hv in HVS if before[hv] == "c3"}
    joined = {hv: rendezvous(hv, ["c1", "c2", "c3", "c4"]) for hv in HVS}
    moved = {hv for hv in HVS if joined[hv] != before[hv]}
    assert moved == {hv for hv in HVS if joined[hv] == "c4"} and 20 < len(moved) < 80


def test_registrations_older_than_a_lease_are_dead():
    assert live({"c1": 100.0, "c2": 100.0 - LEASE - 0.1}, 100.0) == {"c1"}


def test_free_and_expired_hypervisors_are_claimed_by_their_rule_owner_only():
    reg = {"c1": 10.0, "c2": 10.0}
    leases = {"hv0": Lease("", 0, 0), "hv1": Lease("c9", 9.0, 4)}     # hv1: a dead owner's expired lease
    for me in ("c1", "c2"):
        d = decide(me, ["hv0", "hv1"], reg, leases, 10.0)
        assert set(d.claim) == {hv for hv in ("hv0", "hv1") if rendezvous(hv, ["c1", "c2"]) == me}


def test_another_live_owners_lease_is_never_taken_it_releases_first():
    hv = next(h for h in HVS if rendezvous(h, ["c1", "c2"]) == "c2" and rendezvous(h, ["c1"]) == "c1")
    leases = {hv: Lease("c1", 12.0, 1)}                  # c1 owned it while alone; c2 joined
    reg = {"c1": 10.0, "c2": 10.0}
    assert decide("c2", [hv], reg, leases, 10.0).claim == ()
    assert decide("c1", [hv], reg, leases, 10.0).release == (hv,)
    released = {hv: Lease("", 12.0, 1)}
    assert decide("c2", [hv], reg, released, 10.0).claim == (hv,)


def test_an_owner_renews_what_is_still_its_own():
    hv = next(h for h in HVS if rendezvous(h, ["c1", "c2"]) == "c1")
    d = decide("c1", [hv], {"c1": 10.0, "c2": 10.0}, {hv: Lease("c1", 11.0, 3)}, 10.0)
    assert d.renew == (hv,) and not d.claim and not d.release


def test_an_owner_stops_before_its_lease_ends_so_two_never_act_at_once():
    leases = {"hv0": Lease("c1", 20.0, 2)}
    assert owned("c1", leases, 20.0 - MARGIN - 0.01) == {"hv0"}
    assert owned("c1", leases, 20.0 - MARGIN + 0.01) == set()
    # the next owner may claim only once the lease has ended: after c1 stopped acting
    assert decide("c2", ["hv0"], {"c2": 20.0}, leases, 20.0 - 0.01).claim == ()
    assert decide("c2", ["hv0"], {"c2": 20.0}, leases, 20.0).claim == ("hv0",)


def test_a_slow_round_lengthens_the_leases_it_writes_within_bounds():
    from controller.cluster import LEASE_MAX, lease_length
    assert lease_length([]) == LEASE and lease_length([0.05, 0.1]) == LEASE
    assert lease_length([0.1, 1.5]) == 4.5                  # renewals land before the lease ends
    assert lease_length([60.0]) == LEASE_MAX                # a stuck controller does not hold them for long


def test_a_controller_alone_writes_a_longer_lease():
    from controller.cluster import ALONE_LEASE, ALONE_LEASE_MAX, lease_length
    assert lease_length([], alone=True) == ALONE_LEASE and lease_length([5.0], alone=True) == 15.0
    assert lease_length([20.0], alone=True) == ALONE_LEASE_MAX
