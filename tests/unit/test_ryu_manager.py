"""`ryu-manager` on os-ken: Ryu's options, Ryu's imports, Ryu's way of naming apps."""
from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

import pytest

from controller import runtime, ryu_alias

RYU_OPTIONS = ["--ofp-tcp-listen-port", "--ofp-listen-host", "--verbose", "--config-file", "--app-lists",
               "--pid-file", "--log-file", "--observe-links", "--default-log-level", "--version"]


def test_ryu_manager_is_a_console_script_of_packetwalk():
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("ryu-manager") == "packetwalk.ryu_manager:main"


def test_help_shows_ryus_options_and_ours():
    run = subprocess.run([sys.executable, "-m", "packetwalk.ryu_manager", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: ryu-manager")
    for option in RYU_OPTIONS + ["--api-port"]:
        assert option in run.stdout, option
    assert "[app ...]" in run.stdout
    assert run.stderr == ""          # no warnings from the libraries underneath


def test_unknown_option_is_refused_with_usage_and_no_traceback():
    run = subprocess.run([sys.executable, "-m", "packetwalk.ryu_manager", "--ofp-tcp-listen-prot", "1", "x"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "unrecognized arguments: --ofp-tcp-listen-prot" in run.stderr and "Traceback" not in run.stderr


def test_an_app_that_does_not_exist_is_named_in_one_line():
    run = subprocess.run([sys.executable, "-m", "packetwalk.ryu_manager", "no_such_app"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "ryu-manager: cannot load the application(s) no_such_app: No module named 'no_such_app'" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("argv, apps", [
    (["packetwalk", "--verbose"], ["controller.app"]),
    (["--ofp-tcp-listen-port", "6633", "a.py", "b"], ["a.py", "b"]),
    (["--app-lists", "x,y", "--verbose", "z"], ["x", "y", "z"]),
    (["--db-dir", "/tmp/db"], []),                  # an option's value is never taken for an app
])
def test_positional_arguments_are_the_apps_and_options_take_their_values(argv, apps):
    assert runtime.parse(argv, prog="ryu-manager") == apps


def test_option_values_reach_os_kens_configuration():
    from os_ken import cfg
    runtime.parse(["--ofp-tcp-listen-port", "6633", "--ofp-listen-host", "10.0.0.1", "--verbose", "app"],
                  prog="ryu-manager")
    assert (cfg.CONF.ofp_tcp_listen_port, cfg.CONF.ofp_listen_host, cfg.CONF.verbose) == (6633, "10.0.0.1", True)


def test_ryu_imports_are_os_kens_modules():
    assert ryu_alias.install()
    app_manager = importlib.import_module("ryu.base.app_manager")
    import os_ken.base.app_manager
    import os_ken.controller.ofp_event
    assert app_manager is os_ken.base.app_manager
    assert importlib.import_module("ryu.controller.ofp_event") is os_ken.controller.ofp_event
    assert app_manager.RyuApp is os_ken.base.app_manager.OSKenApp
    assert importlib.import_module("ryu.exception").RyuException.__name__ == "OSKenException"
    assert app_manager.__spec__.name == "os_ken.base.app_manager"     # os-ken's module keeps its own spec


def test_a_module_os_ken_does_not_have_fails_as_in_ryu():
    ryu_alias.install()
    with pytest.raises(ModuleNotFoundError, match="ryu.app.simple_switch_13"):
        importlib.import_module("ryu.app.simple_switch_13")


def test_the_alias_leaves_names_that_are_not_ryus_alone():
    assert ryu_alias.target("ryu.lib.hub") == "os_ken.lib.hub"
    assert ryu_alias.target("ryu") == "os_ken"
    assert ryu_alias.target("ryubar") is None and ryu_alias.target("os_ken.ryu") is None


def test_a_real_ryu_wins_over_the_alias(tmp_path, monkeypatch):
    (tmp_path / "ryu").mkdir()
    (tmp_path / "ryu" / "__init__.py").write_text("REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    aliased = {m: sys.modules.pop(m) for m in list(sys.modules) if m == "ryu" or m.startswith("ryu.")}
    try:
        assert ryu_alias.install() is False
        assert importlib.import_module("ryu").REAL
    finally:
        sys.modules.pop("ryu", None)
        sys.modules.update(aliased)


def test_an_exception_in_a_handler_is_logged_and_the_app_takes_the_next_event(caplog, monkeypatch):
    """As in Ryu; os-ken's native hub would end the app's event loop, silently."""
    import threading
    from os_ken.base import app_manager
    from os_ken.controller import event
    from os_ken.controller.handler import set_ev_cls

    class Ping(event.EventBase):
        def __init__(self, n):
            super().__init__()
            self.n = n

    handled = threading.Event()

    class App(app_manager.OSKenApp):
        @set_ev_cls(Ping)
        def ping(self, ev):
            if ev.n == 1:
                raise ValueError("a bug in the app")
            handled.set()

    from os_ken.lib import hub
    monkeypatch.setattr(hub, "TaskExit", hub.TaskExit)      # put back afterwards
    runtime.keep_handlers_alive()
    app = App()
    app_manager.register_app(app)
    app.start()
    try:
        app.send_event(app.name, Ping(1))
        app.send_event(app.name, Ping(2))
        assert handled.wait(10), "the second event was never handled"
    finally:
        app.stop()
        app_manager.unregister_app(app)
    assert "a bug in the app" in caplog.text



def test_the_controllers_liveness_defaults_apply_only_when_it_runs():
    from os_ken import cfg
    import controller.app
    runtime.with_defaults(runtime.parse(["packetwalk"], prog="ryu-manager"))
    assert cfg.CONF.echo_request_interval == controller.app.ECHO_INTERVAL
    assert runtime.with_defaults(runtime.parse(["app.py"], prog="ryu-manager")) == ["app.py"]
    assert cfg.CONF.echo_request_interval == 15                       # os-ken's own, for a Ryu app alone
    assert runtime.with_defaults([], ()) == ["os_ken.controller.ofp_handler"]     # Ryu's: no app named
    assert runtime.with_defaults(["x"], ("controller.app",)) == ["controller.app", "x"]
