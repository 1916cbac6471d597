"""OpenFlow liveness: a dead switch is told from a busy one and from a controller behind."""
from __future__ import annotations

from controller.liveness import BEHIND, BUSY_DEAD_AFTER, DEAD_AFTER, ECHO_INTERVAL, Echoes


def _run(e: Echoes, start: float, end: float, busy=frozenset(), step: float = 0.1):
    """Ticks from start to end: every request asked and every switch called dead, with when."""
    asked, dead = [], []
    for i in range(round((end - start) / step) + 1):
        t = start + i * step
        ask, gone = e.tick(t, busy)
        asked += [(round(t, 3), d) for d in ask]
        dead += [(round(t, 3), d) for d in gone]
        for d in gone:
            e.gone(d)
    return asked, dead


def test_a_switch_that_answers_stays_and_one_that_stops_is_dead_after_dead_after():
    e = Echoes()
    e.connected(1, 0.0)
    e.connected(2, 0.0)
    asked, dead = _run(e, 0.0, 1.0)
    assert [t for t, d in asked if d == 1] == [0.0, ECHO_INTERVAL, 2 * ECHO_INTERVAL]
    for t in (0.01, 0.51, 1.01):
        e.heard_from(1, t)                    # switch 1 answers; switch 2 never does
    _, dead = _run(e, 1.1, 3.0)
    assert [d for _, d in dead] == [2]
    assert dead[0][0] > DEAD_AFTER and dead[0][0] <= DEAD_AFTER + 0.11


def test_a_switch_applying_our_updates_gets_longer_than_an_idle_one():
    e = Echoes()
    e.connected(1, 0.0)
    _, dead = _run(e, 0.0, 10.0, busy={1})
    assert dead == []
    _, dead = _run(e, 10.1, BUSY_DEAD_AFTER + 1, busy={1})
    assert [d for _, d in dead] == [1]


def test_time_the_controller_spent_behind_does_not_count_against_a_switch():
    """Ticks are stamped when posted: a reply that arrived before a late-handled tick was
    taken in before it, so the switch is alive at the tick's time, however late."""
    e = Echoes()
    e.connected(1, 0.0)
    e.tick(0.0)
    e.heard_from(1, 0.05)
    ask, dead = e.tick(1.9)                  # handled 5 s late: its `now` is still 1.9
    assert dead == [] and ask == [1]
    e.heard_from(1, 1.95)
    assert e.tick(3.5) == ([1], [])


def test_a_reply_older_than_the_connection_or_a_gone_switch_changes_nothing():
    e = Echoes()
    e.connected(1, 10.0)
    e.heard_from(1, 9.0)
    assert e.heard[1] == 10.0
    e.gone(1)
    e.heard_from(1, 11.0)
    assert e.tick(20.0) == ([], [])


def test_a_tick_handled_late_asks_but_calls_nobody_dead():
    e = Echoes()
    e.connected(1, 0.0)
    e.tick(0.0)
    assert e.tick(5.0, handled=5.0 + BEHIND + 0.1) == ([1], [])      # its reply may wait behind the tick
    assert e.tick(5.1, handled=5.1) == ([], [1])


def test_many_switches_silent_at_once_is_this_machine_not_each_switch():
    e = Echoes()
    for d in range(1, 9):
        e.connected(d, 0.0)
    e.tick(0.0)
    for d in range(1, 6):                    # 5 of 8 answer, 3 do not: more than a quarter
        e.heard_from(d, 0.1)
    assert e.tick(2.5)[1] == [] and e.mass_silences == 1
    for d in range(1, 8):                    # then only one stays silent: it is dead
        e.heard_from(d, 2.6)
    assert e.tick(2.7)[1] == [8]


def test_switches_going_silent_together_are_not_called_dead_a_few_at_a_time():
    """A starved machine: 200 switches stop being heard within a second of each other, so
    they cross the limit a few per tick, never more than a quarter in one: still the machine,
    not each switch. One that alone stays silent among switches that answer is dead."""
    e = Echoes()
    for d in range(200):
        e.connected(d, 0.0)
    e.tick(0.0)
    for d in range(200):
        e.heard_from(d, 0.005 * d)           # last heard 0 to 1 s
    assert len(e.tick(1.0)[0]) == 200        # asked again: none answers now
    e.dead_after = DEAD_AFTER / 4            # (200 switches: 4 x this, as with 50 switches and DEAD_AFTER)
    for t in (2.1, 2.3, 2.5, 2.7, 2.9):      # every tick: some past 2 s, fewer than 50
        assert e.tick(t)[1] == []
    for d in range(1, 200):
        e.heard_from(d, 3.0)                 # the machine is back; switch 0 does not answer
    dead = []
    for t in (3.1, 3.5, 4.0, 4.5, 5.0, 5.5):
        gone = e.tick(t)[1]
        dead += gone
        for d in gone:
            e.gone(d)                        # (the app closes it)
        for d in range(1, 200):
            e.heard_from(d, t)
    assert dead == [0]


def test_a_switch_just_done_with_our_updates_gets_a_few_seconds_more():
    """It took our last bundle and goes on revalidating its datapath flows: silent for 3 s
    right after, it is not dead; silent past DEAD_AFTER once the grace is over, it is."""
    from controller.liveness import AFTER_BUSY
    e = Echoes()
    e.connected(1, 0.0)
    _run(e, 0.0, 10.0, busy={1})               # applying our updates; last heard at 0
    e.heard_from(1, 10.0)                      # its commit reply: done, then silent
    _, dead = _run(e, 10.1, 10.0 + AFTER_BUSY - 0.2)
    assert dead == []                          # 4.7 s silent, just after being busy
    e.heard_from(1, 15.0)
    _, dead = _run(e, 15.1, 15.0 + DEAD_AFTER + 0.3)
    assert [d for _, d in dead] == [1]         # the grace is over: DEAD_AFTER again


def test_with_many_switches_silence_is_judged_over_longer():
    """200 switches: DEAD_AFTER for each 50 (8 s); a hung one is still called dead."""
    e = Echoes()
    for d in range(200):
        e.connected(d, 0.0)
    dead = []
    for i in range(1, 101):
        t = i * 0.1
        for d in range(1, 200):
            e.heard_from(d, t)                 # all answer but switch 0
        dead += [(round(t, 1), d) for d in e.tick(t)[1]]
    assert dead and dead[0][1] == 0 and 4 * DEAD_AFTER < dead[0][0] <= 4 * DEAD_AFTER + 0.6
