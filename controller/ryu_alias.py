"""`import ryu...` for apps written for Ryu: each `ryu.X` module is os-ken's `os_ken.X`.

os-ken is Ryu under another name (OpenStack's fork, same app API). An import finder, first on
sys.meta_path (a Ryu submodule must not be found as a file in os-ken's package), answers for
`ryu` only when no real Ryu is on sys.path: where one is installed, it wins. The alias is the module itself, not a copy: `ryu.controller.ofp_event`
*is* `os_ken.controller.ofp_event`, so events, classes and the configuration are shared with
os-ken and with apps that import os-ken directly. The two names os-ken changed are given
their Ryu spelling too (RyuApp, RyuException).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

RYU, OS_KEN = "ryu", "os_ken"
RENAMED = {                       # os-ken module -> {Ryu's name: os-ken's name}
    "os_ken.base.app_manager": {"RyuApp": "OSKenApp"},
    "os_ken.exception": {"RyuException": "OSKenException"},
}


def target(fullname: str) -> str | None:
    """The os-ken module that Ryu's module `fullname` is, or None if it is not Ryu's."""
    if fullname == RYU or fullname.startswith(RYU + "."):
        return OS_KEN + fullname[len(RYU):]
    return None


class _Alias(importlib.abc.Loader):
    """Loads `ryu.X` as the already imported module os_ken.X."""

    def __init__(self, module):
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        module.__spec__ = self.spec     # the import system gave it the alias's spec: it keeps its own


class RyuFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target_module=None):
        name = target(fullname)
        if name is None:
            return None
        if fullname == RYU and importlib.machinery.PathFinder.find_spec(RYU) is not None:
            return None          # a real Ryu is installed
        if fullname != RYU and not _aliased(RYU):
            return None          # `ryu` is a real Ryu: its submodules are its own
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                return None      # os-ken has no such module: the import fails as it would in Ryu
            raise
        if fullname == RYU:
            _ryu_names()
        return importlib.util.spec_from_loader(fullname, _Alias(module),
                                               is_package=hasattr(module, "__path__"))


def _ryu_names() -> None:
    """Ryu's spelling of the names os-ken changed, beside os-ken's (os-ken's modules hold both:
    `from ryu.base.app_manager import RyuApp` may not pass through this finder at all)."""
    for module_name, names in RENAMED.items():
        module = importlib.import_module(module_name)
        for ryu_name, os_ken_name in names.items():
            if not hasattr(module, ryu_name):
                setattr(module, ryu_name, getattr(module, os_ken_name))


def _aliased(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and module.__name__ == target(name)


def install() -> bool:
    """Put the finder first on sys.meta_path (once). True if `ryu` now means os-ken."""
    if not any(isinstance(f, RyuFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, RyuFinder())
    if RYU in sys.modules:
        return _aliased(RYU)
    spec = importlib.util.find_spec(RYU)
    return spec is not None and isinstance(spec.loader, _Alias)
