"""The controller's global settings, changed on a running lab through its API, and put back."""
from __future__ import annotations

import contextlib
import json
import urllib.request

from mininet_topos.lab import API_PORT


def patch(settings: dict, api: str = f"http://127.0.0.1:{API_PORT}") -> dict:
    request = urllib.request.Request(f"{api}/v1/settings", data=json.dumps(settings).encode(), method="PATCH",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


@contextlib.contextmanager
def arp_suppression_off(lab):
    """ARP flooded and answered by its target (flood and learn) for the block's duration."""
    patch({"arp_suppression": False})
    try:
        yield
    finally:
        patch({"arp_suppression": True})
