"""GET /v1/realized and ?wait=hv on writes (the controller's side is a stand-in here;
tests/unit/test_reconcile.py checks what `realized` means)."""
from fastapi.testclient import TestClient

from controller.api import create_api
from controller.intent import parse_intent
from controller.model import Network


class StandIn:
    """Realizes a change only when told to."""
    def __init__(self):
        self.net = Network(parse_intent({"logical_switches": [{"name": "a", "vni": 5001, "subnet": "10.1.1.0/24"}]}))
        self.generation, self.done = 0, 0

    def call(self, fn):
        return fn(self)

    def realized(self):
        return {"generation": self.generation, "realized": self.done}

    def wait_realized(self, generation, timeout):
        return self.done >= generation

    def forget_learned(self, vni, ip):
        self.generation += 1
        return True


def test_realized_says_which_change_is_confirmed_everywhere():
    ctl = StandIn()
    ctl.generation, ctl.done = 7, 5
    assert TestClient(create_api(ctl)).get("/v1/realized").json() == {"generation": 7, "realized": 5}


def test_a_write_with_wait_hv_answers_once_realized_and_504_if_not():
    ctl = StandIn()
    client = TestClient(create_api(ctl))
    r = client.delete("/v1/learned-bindings/5001/10.1.1.9?wait=hv")
    assert r.status_code == 504 and "generation 1" in r.json()["detail"]
    ctl.done = 2
    r = client.delete("/v1/learned-bindings/5001/10.1.1.9?wait=hv")
    assert r.status_code < 300 and r.headers["x-packetwalk-realized"] == "2"
    assert client.delete("/v1/learned-bindings/5001/10.1.1.9").status_code < 300    # no wait: no header
