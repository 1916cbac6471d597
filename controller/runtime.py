"""Run os-ken apps the way ryu-manager did (os-ken 4 has no osken-manager).

Options after the app list go to os-ken's own configuration (oslo.config), so every
os-ken flag works: --ofp-listen-host, --ofp-tcp-listen-port, --verbose, ... plus ours:
--db-dir, --nb, --state-file, --api-listen-host and --api-port (registered by controller.app).
"""
from __future__ import annotations

import sys

DEFAULT_APPS = ["controller.app"]


def run(argv: list[str]) -> int:
    from os_ken import cfg, log
    from os_ken.base.app_manager import AppManager   # first: os-ken's modules import each other
    import os_ken.controller.controller  # noqa: F401  registers the --ofp-* options
    import controller.app  # noqa: F401  registers --db-dir, --nb, --state-file
    from controller.api import ListenError
    from controller.nbdb import DatabaseError

    apps = [a for a in argv if not a.startswith("-") and not _is_option_value(argv, a)]
    flags = [a for a in argv if a not in apps]
    # Liveness: a switch that stops answering echoes is dropped (and its hypervisor marked
    # down) within ECHO_INTERVAL * (MAX_UNREPLIED_ECHOS + 1) s; os-ken's flags still override.
    cfg.CONF.set_default("echo_request_interval", controller.app.ECHO_INTERVAL)
    cfg.CONF.set_default("maximum_unreplied_echo_requests", controller.app.MAX_UNREPLIED_ECHOS)
    try:
        cfg.CONF(args=flags, project="os_ken", prog="packetwalk controller")
    except cfg.Error as e:
        print(f"packetwalk controller: {e}", file=sys.stderr)
        return 2
    log.init_log()
    # os-ken's native hub sets TaskExit = Exception, and the app's event loop re-raises
    # TaskExit: one exception in any handler would end the app's thread without a word.
    # A class of its own lets os-ken log the exception and go on with the next event.
    from os_ken.lib import hub
    if hub.TaskExit is Exception:
        hub.TaskExit = type("TaskExit", (Exception,), {})
    try:
        AppManager.run_apps(DEFAULT_APPS + [a for a in apps if a not in DEFAULT_APPS])
    except (DatabaseError, ListenError) as e:
        print(f"packetwalk controller: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _is_option_value(argv: list[str], arg: str) -> bool:
    """True if `arg` is the value of the option before it (`--db-dir DIR`)."""
    i = argv.index(arg)
    return i > 0 and argv[i - 1].startswith("--") and "=" not in argv[i - 1] \
        and argv[i - 1] not in ("--verbose", "--use-stderr", "--nouse-stderr", "--use-syslog")
