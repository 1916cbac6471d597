"""`ryu-manager`: Ryu's command, on os-ken.

    ryu-manager [OPTIONS] APP ...       # Ryu's options: --ofp-tcp-listen-port, --verbose, ...
    ryu-manager packetwalk --topology mininet_topos/seed.yaml    # packetwalk's controller

APP is a module name or a .py file, as in Ryu; `packetwalk` names our controller
(controller.app). Apps written for Ryu load unchanged (`from ryu.base import app_manager`
is os-ken's module: controller/ryu_alias.py). One runner serves this and
`packetwalk controller` (controller/runtime.py).
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from controller import runtime
    return runtime.run(sys.argv[1:] if argv is None else argv, prog="ryu-manager", default_apps=(),
                       project="ryu")


if __name__ == "__main__":
    sys.exit(main())
