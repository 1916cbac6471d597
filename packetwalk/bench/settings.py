"""The controller's global settings, changed on a running lab through its API, and put back."""
from __future__ import annotations

import contextlib

from packetwalk.show import request


@contextlib.contextmanager
def arp_suppression_off(lab):
    """ARP flooded and answered by its target (flood and learn) for the block's duration."""
    request(lab.api, "PATCH", "/v1/settings", {"arp_suppression": False})
    try:
        yield
    finally:
        request(lab.api, "PATCH", "/v1/settings", {"arp_suppression": True})
