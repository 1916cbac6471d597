"""The lab's Mininet CLI: `help` lists packetwalk's commands beside Mininet's."""
from __future__ import annotations

import logging
import os

from mininet.log import setLogLevel

from packetwalk.mininet_cli import PacketwalkCLI


def run_script(tmp_path, caplog, capsys, *lines: str) -> str:
    script = tmp_path / "script"
    script.write_text("\n".join(lines) + "\n")
    never = os.pipe()
    setLogLevel("output")
    try:
        with caplog.at_level(logging.DEBUG, logger="mininet"), open(never[0]) as stdin:
            PacketwalkCLI({}, tmp_path, stdin=stdin, script=str(script))
    finally:
        setLogLevel("error")
        os.close(never[1])
    return capsys.readouterr().out + "".join(r.getMessage() for r in caplog.records)


def test_help_lists_ours(tmp_path, caplog, capsys):
    out = run_script(tmp_path, caplog, capsys, "help")
    assert "walk" in out and "flows" in out              # among the documented commands
    assert "packetwalk commands:" in out and "walk SRC DST [PROTO]" in out
    assert "Undocumented commands" not in out


def test_walk_and_flows_say_how_they_are_used(tmp_path, caplog, capsys):
    out = run_script(tmp_path, caplog, capsys, "walk vm1", "flows", "flows hv1 --table nope")
    assert "usage: walk SRC DST" in out and "usage: flows HV" in out
    assert "flows: --table 'nope': br-int's tables are" in out


def test_walk_without_a_running_lab_says_so(tmp_path, caplog, capsys):
    out = run_script(tmp_path, caplog, capsys, "walk vm1 vm3")
    assert "walk: no lab is running" in out


def test_commands_piped_in_run_in_order_and_the_cli_returns(tmp_path, caplog, capsys, monkeypatch):
    from packetwalk import mininet_cli
    commands = tmp_path / "commands"
    commands.write_text("walk vm1\nflows\n")
    setLogLevel("output")
    try:
        with caplog.at_level(logging.DEBUG, logger="mininet"), open(commands) as stdin:
            monkeypatch.setattr("sys.stdin", stdin)
            mininet_cli.run({}, tmp_path)
    finally:
        setLogLevel("error")
    out = capsys.readouterr().out + "".join(r.getMessage() for r in caplog.records)
    assert out.index("usage: walk SRC DST") < out.index("usage: flows HV")
