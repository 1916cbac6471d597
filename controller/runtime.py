"""Run os-ken apps the way `ryu-manager` did: one runner behind `ryu-manager` and
`packetwalk controller`.

oslo.config parses the whole command line, as in Ryu's manager: the app modules are its
positional arguments (plus --app-lists), every other argument is an option os-ken or an app
registered before parsing: --ofp-listen-host, --ofp-tcp-listen-port, --verbose,
--config-file, ... and the controller's own (registered by controller.app). Apps written for
Ryu load unchanged: `ryu.*` imports resolve to os-ken's modules (controller/ryu_alias.py).
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
import warnings

# python-ovs imports eventlet where it is installed (os-ken does not use it): not the user's concern
warnings.filterwarnings("ignore", message="\nEventlet is deprecated")

CONTROLLER_APP = "controller.app"
APP_NAMES = {"packetwalk": CONTROLLER_APP}     # what `ryu-manager packetwalk` means


def _register_options(cfg) -> None:
    """Ryu's manager's own options; the modules whose options Ryu's --help listed."""
    import os_ken.controller.controller  # noqa: F401  --ofp-listen-host, --ofp-tcp-listen-port, ...
    import os_ken.flags  # noqa: F401  Ryu's global flags
    import os_ken.log  # noqa: F401  --verbose, --log-file, ...
    import os_ken.topology.switches  # noqa: F401  --observe-links, ...
    import controller.app  # noqa: F401  the controller's options (--db-dir, --nb, its API, ...)
    cfg.CONF.register_cli_opts([
        cfg.ListOpt("app-lists", default=[], help="application module name to run"),
        cfg.MultiStrOpt("app", positional=True, default=[], help="application module name to run"),
        cfg.StrOpt("pid-file", default=None, help="pid file name"),
        cfg.BoolOpt("enable-debugger", default=False,
                    help="accepted for Ryu's scripts; os-ken runs on native threads, nothing is patched"),
    ])


class _TaskExit(Exception):
    """What the native hub's TaskExit should be: raised by nothing but a deliberate exit."""


def keep_handlers_alive() -> None:
    """Ryu logged an exception in an app's event handler and went on with the next event.
    os-ken's native hub (the default) makes TaskExit, the "normal exit" an event loop
    re-raises, plain Exception: any handler's error then ends its app's event loop, silently.
    Give TaskExit its own class (nothing raises it on native threads), as Ryu behaved."""
    from os_ken.lib import hub
    if hub.TaskExit is Exception:
        hub.TaskExit = _TaskExit


def parse(argv: list[str], prog: str, project: str = "os_ken") -> list[str]:
    """Parse `argv` into os-ken's configuration; return the app modules it names.
    oslo.config exits with its usage message on an unknown option or a bad value."""
    import os_ken
    from os_ken import cfg
    from os_ken.base import app_manager  # noqa: F401  first: os-ken's modules import each other
    cfg.CONF.clear()                     # parsed before (a test): options may be registered again
    _register_options(cfg)
    version = f"{prog} (packetwalk {importlib.metadata.version('packetwalk')}, os-ken {os_ken.__version__})"
    cfg.CONF(args=argv, project=project, prog=prog, version=version)
    apps = list(cfg.CONF.app_lists) + list(cfg.CONF.app)
    return [APP_NAMES.get(a, a) for a in apps]


def with_defaults(named: list[str], default_apps=()) -> list[str]:
    """The apps to run: `default_apps`, then the ones named; as Ryu did, the OpenFlow handler
    alone if none. With the controller among them, its liveness defaults: os-ken's echo loop
    off (the controller sends its own echoes and tells a dead switch from a busy one:
    controller/liveness.py) and its send timeout as long as a busy switch may take (os-ken's
    options in a --config-file still override)."""
    from os_ken import cfg
    import controller.app
    apps = list(dict.fromkeys([*default_apps, *named])) or ["os_ken.controller.ofp_handler"]
    for name, value in (("echo_request_interval", controller.app.ECHO_INTERVAL),
                        ("maximum_unreplied_echo_requests", controller.app.MAX_UNREPLIED_ECHOS),
                        ("socket_timeout", controller.app.SOCKET_TIMEOUT)):
        if CONTROLLER_APP in apps:
            cfg.CONF.set_default(name, value)
        else:
            cfg.CONF.clear_default(name)
    return apps


def run(argv: list[str], prog: str = "packetwalk controller", default_apps=(CONTROLLER_APP,),
        project: str = "os_ken") -> int:
    """Parse, load the apps (`default_apps` first, then the ones named), run until stopped."""
    from oslo_config.cfg import Error as ConfigError
    from os_ken import cfg, log
    from os_ken.base.app_manager import AppManager
    from os_ken.lib import hub

    from controller import ryu_alias, tls_channel
    from controller.api import ListenError
    from controller.nbdb import DatabaseError
    from controller.tls import TlsError

    try:
        named = parse(argv, prog, project)
    except ConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    apps = with_defaults(named, default_apps)
    log.init_log()
    if cfg.CONF.pid_file:
        with open(cfg.CONF.pid_file, "w") as f:
            f.write(str(os.getpid()))
    ryu_alias.install()
    keep_handlers_alive()
    tls_channel.guard_openflow_tls()
    manager = AppManager.get_instance()
    try:
        manager.load_apps(apps)
    except (ImportError, SyntaxError) as e:
        print(f"{prog}: cannot load the application(s) {' '.join(apps)}: {e}", file=sys.stderr)
        return 2
    try:
        services = manager.instantiate_apps(**manager.create_contexts())
        hub.joinall(services)
    except (DatabaseError, ListenError, TlsError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        manager.close()
    logging.shutdown()
    return 0

