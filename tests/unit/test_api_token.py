"""Who may call the northbound API: loopback by default; anywhere else only with a token."""
from __future__ import annotations

import types

import pytest
from fastapi.testclient import TestClient

from controller.api import ListenError, create_api, listen
from controller.model import Network

TOKEN = "s3cret-token-0123456789"


def test_with_a_token_every_request_needs_it():
    ctl = types.SimpleNamespace(net=Network())
    ctl.call = lambda fn: fn(ctl)
    client = TestClient(create_api(ctl, TOKEN))
    assert client.get("/v1/hypervisors").status_code == 401
    assert client.get("/v1/hypervisors", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/hypervisors", headers={"Authorization": TOKEN}).status_code == 401
    assert client.post("/v1/logical-switches", json={"name": "db", "vni": 5003, "subnet": "10.1.3.0/24"}
                       ).status_code == 401
    ok = client.get("/v1/hypervisors", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json() == []


def test_listening_beyond_loopback_needs_a_token():
    with pytest.raises(ListenError, match="refusing to listen on 0.0.0.0 without a token"):
        listen("0.0.0.0", 0)
    listen("0.0.0.0", 0, token=TOKEN).close()
    listen("127.0.0.1", 0).close()
