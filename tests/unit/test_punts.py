"""Frames held for a moving VM go on once the landing's stage 0 is confirmed (dispatch.made),
not before; what never lands is dropped after the hold."""
from __future__ import annotations

from types import SimpleNamespace

from os_ken.ofproto import ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser

from controller.convergence import Convergence
from controller.mobility import HOLD, locations
from controller.punts import LANDING_TIMEOUT, Punts
from controller.tables import Table
from test_mobility import MAC, network

HV1 = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1, address=("169.254.77.2", 6633))


class App:
    def __init__(self, net):
        self.net, self.owned, self.sent = net, set(net.hypervisors), []
        self.conv = Convergence(net)
        self.dpid_of = {"hv1": 1, "hv2": 2, "hv3": 3}

    def _hv_of(self, dpid):
        return next((self.net.hypervisors[h] for h, d in self.dpid_of.items() if d == dpid), None)

    def _out(self, dp, msg):
        self.sent += msg if isinstance(msg, list) else [msg]


def frame_for_vm1() -> SimpleNamespace:
    data = bytes.fromhex(MAC.replace(":", "")) + bytes(6) + b"\x08\x00" + bytes(20)
    return SimpleNamespace(datapath=HV1, table_id=Table.IN_TRANSIT, match={}, data=data, reason=0)


def test_held_frames_wait_for_the_landing_s_stage_0_then_go_on_from_the_old_place():
    import time
    now = time.time() - 0.3          # landed 0.3 s ago: its link settled, its landing not overdue
    net = network()
    app = App(net)
    punts = Punts(app)
    before = locations(net)
    net.set_interfaces(net.hypervisors["hv1"], {})
    net.moves.observe(before, locations(net), now - 0.1)
    punts.packet_in(net.hypervisors["hv1"], frame_for_vm1())
    punts.packet_in(net.hypervisors["hv1"], frame_for_vm1())
    assert app.sent == [] and len(punts.held[MAC]) == 2             # in transit: held
    before = locations(net)
    net.set_interfaces(net.hypervisors["hv2"], {"vm1": (7, "vm1")})
    net.moves.observe(before, locations(net), now)
    [m] = list(net.moves)
    plan = SimpleNamespace(seq=4, first=frozenset({"hv2"}))
    punts.plans_started([plan])
    punts.link_up[(2, 7)] = True
    app.conv.dispatch.made = 3                                       # stage 0 not confirmed yet
    assert punts.release_moved() and app.sent == []
    assert time.time() - now < LANDING_TIMEOUT
    app.conv.dispatch.made = 4
    assert not punts.release_moved()
    outs = [msg for msg in app.sent if isinstance(msg, parser.OFPPacketOut)]
    assert len(outs) == 2 and MAC not in punts.held


def test_frames_for_a_port_that_never_lands_are_dropped_after_the_hold():
    import time
    net = network()
    app = App(net)
    punts = Punts(app)
    before = locations(net)
    net.set_interfaces(net.hypervisors["hv1"], {})
    net.moves.observe(before, locations(net), time.time())
    punts.packet_in(net.hypervisors["hv1"], frame_for_vm1())
    punts.tick(time.time() + HOLD + 1)
    assert MAC not in punts.held and app.sent == []


def test_a_frame_the_failover_group_punts_for_a_port_still_there_goes_straight_out_of_it():
    """OVS takes a moment to call a new port's link live: its group sends to IN_TRANSIT."""
    net = network()
    app = App(net)
    Punts(app).packet_in(net.hypervisors["hv1"], frame_for_vm1())
    [out] = app.sent
    assert [a.port for a in out.actions] == [1]          # vm1's ofport on hv1


def test_meters_and_groups_are_set_again_when_their_content_changes_or_the_switch_reconnects():
    from controller.guard import Guard
    g = Guard()
    new, old = g.changes("meter", 1, {3: (100, 20), 4: (50, 10)})
    assert new == {3: (100, 20), 4: (50, 10)} and not old
    g.mark_sent("meter", 1, new, ())
    assert g.changes("meter", 1, {3: (100, 20), 4: (50, 10)}) == ({}, set())
    assert g.changes("meter", 1, {3: (200, 40)}) == ({3: (200, 40)}, {4})     # a new rate: set again
    g.forget(1)
    assert g.changes("meter", 1, {3: (100, 20)}) == ({3: (100, 20)}, set())  # reconnected: all again
