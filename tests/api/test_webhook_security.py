"""Webhook SSRF: internal targets refused in every spelling, at registration and at delivery
(DNS answers that change in between gain nothing), receivers' answers never stored, ids
never reused. DNS is played by `FakeDns` through the policy's resolver hook; receivers are
real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.settings import Settings
from app.tables import WebhookDelivery
from app.webhook_targets import TargetPolicy
from tests.fixtures.build import make_project
from tests.fixtures.webhooks import (
    FakeDns,
    closed_port,
    deliver,
    emit,
    local_policy,
    log_of,
    quiet_app,
    register,
    register_ok,
)

INTERNAL_URLS = [
    "http://127.0.0.1/hook",
    "https://127.0.0.1:8443/hook",
    "http://user:pw@127.0.0.1:8080/x",
    "http://127.0.0.1./hook",
    "http://127.1/",
    "http://127.254.1.1/",
    "http://localhost/",
    "http://LOCALHOST:8000/",
    "http://localhost./",
    "http://api.localhost/",
    "http://0.0.0.0/",
    "http://0/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]:8000/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::127.0.0.1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://192.0.0.8/",
    "http://198.18.0.1/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 around 169.254.169.254
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_targets_are_refused_at_registration(client, admin, url):
    pid = make_project(client, admin)["id"]
    r = register(client, admin, pid, url)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    assert "refused" in err["message"] and "TAG2MASK_WEBHOOK_ALLOW_NETWORKS" in err["message"]
    assert err["detail"][0]["loc"] == ["body", "url"]
    assert err["detail"][0]["type"] == "refused_address"
    assert client.get(f"/v1/projects/{pid}/webhooks", headers=admin).json()["items"] == []


def test_names_are_resolved_and_every_answer_checked(client, admin):
    dns = FakeDns(
        {
            "public.example": "93.184.216.34",
            "inside.example": "10.1.2.3",
            "mixed.example": ["93.184.216.34", "127.0.0.1"],
            "metadata.example": "fd00:ec2::254",
        }
    )
    client.app.state.webhook_policy.resolver = dns
    pid = make_project(client, admin)["id"]
    assert register(client, admin, pid, "https://public.example/h").status_code == 201
    for name in ("inside", "mixed", "metadata"):
        r = register(client, admin, pid, f"https://{name}.example/h")
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", name
    # a name that does not resolve (yet) is accepted: every delivery checks again
    assert register(client, admin, pid, "https://not-yet.example/h").status_code == 201
    assert dns.questions == [
        "public.example",
        "inside.example",
        "mixed.example",
        "metadata.example",
        "not-yet.example",
    ]


def test_allowed_networks_open_only_themselves(make_client, admin):
    client = make_client(webhook_allow_networks=["10.20.0.0/16", "127.0.0.0/8", "fd00:1::/64"])
    pid = make_project(client, admin)["id"]
    for ok in (
        "http://10.20.3.4/",
        "http://127.0.0.1:9/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00:1::5]/",
    ):
        assert register(client, admin, pid, ok).status_code == 201, ok
    for refused in ("http://10.21.0.1/", "http://169.254.169.254/", "http://[::1]/"):
        assert register(client, admin, pid, refused).status_code == 422, refused


def test_setting_is_a_json_list_of_networks(monkeypatch):
    monkeypatch.setenv("TAG2MASK_WEBHOOK_ALLOW_NETWORKS", '["10.0.0.0/8", "fd00::/8"]')
    assert [str(n) for n in Settings().webhook_allow_networks] == ["10.0.0.0/8", "fd00::/8"]
    monkeypatch.setenv("TAG2MASK_WEBHOOK_ALLOW_NETWORKS", '["not a network"]')
    with pytest.raises(ValueError):
        Settings()
    monkeypatch.delenv("TAG2MASK_WEBHOOK_ALLOW_NETWORKS")
    assert Settings().webhook_allow_networks == []


# --- at delivery -----------------------------------------------------------------------------


def rebinding_setup(client, admin, rx):
    """A webhook on a name that resolved to a public address when it was registered."""
    factory = quiet_app(client)
    dns = FakeDns({"hooks.example": "93.184.216.34"})
    client.app.state.webhook_policy.resolver = dns
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, f"http://hooks.example:{rx.port}/hook")
    emit(factory, pid)
    return factory, dns, hook


def test_dns_that_changes_after_registration_is_refused_at_delivery(client, admin, receiver):
    rx = receiver()
    factory, dns, hook = rebinding_setup(client, admin, rx)
    dns.names["hooks.example"] = "127.0.0.1"  # the rebind: now it points inside
    assert deliver(factory, policy=TargetPolicy(resolver=dns)) == 1
    [entry] = log_of(client, admin, hook["id"])
    assert entry["status"] == "pending" and entry["attempts"] == 1
    assert entry["last_status_code"] is None and entry["last_error"] == "refused_address"
    assert rx.received() == []


def test_delivery_connects_to_the_address_it_checked(client, admin, receiver):
    """One lookup per attempt; the socket goes to that answer, the Host header keeps the name.

    The name resolves to 127.0.0.1 only in the fake DNS, so a request that reaches the
    receiver was sent to the checked address, not to a second lookup of the name.
    """
    rx = receiver()
    factory, dns, hook = rebinding_setup(client, admin, rx)
    dns.names["hooks.example"] = "127.0.0.1"
    dns.questions.clear()
    assert deliver(factory, policy=local_policy(dns)) == 1
    [req] = rx.received()
    assert req.headers["host"] == f"hooks.example:{rx.port}"
    assert dns.questions == ["hooks.example"]
    assert log_of(client, admin, hook["id"])[0]["status"] == "delivered"


def test_a_public_answer_is_used_for_the_connection_not_a_second_lookup(client, admin, receiver):
    rx = receiver()
    factory, dns, hook = rebinding_setup(client, admin, rx)
    answers = iter(["93.184.216.34", "127.0.0.1"])
    dns.questions.clear()

    def flipping(host: str, port: int):
        dns.names["hooks.example"] = next(answers)  # public first, then inside
        return dns(host, port)

    assert deliver(factory, policy=local_policy(flipping), timeout_s=0.5) == 1
    [entry] = log_of(client, admin, hook["id"])
    assert entry["last_error"] == "unreachable"  # 93.184.216.34:port, not the receiver
    assert rx.received() == [] and dns.questions == ["hooks.example"]


def test_a_webhook_registered_before_the_policy_is_refused_at_delivery(client, admin, receiver):
    """A URL stored when loopback was allowed (or before this check existed) is not sent."""
    rx = receiver()
    factory = quiet_app(client)
    client.app.state.webhook_policy = local_policy()
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    emit(factory, pid)
    assert deliver(factory, policy=TargetPolicy()) == 1
    assert log_of(client, admin, hook["id"])[0]["last_error"] == "refused_address"
    assert rx.received() == []


# --- what the log keeps ----------------------------------------------------------------------


def test_the_receivers_answer_is_never_stored_or_returned(client, admin, receiver):
    secret = "db-password=hunter2-from-an-internal-500"
    rx = receiver(always_fail=True, fail_status=500, fail_body=secret.encode())
    factory = quiet_app(client)
    client.app.state.webhook_policy = local_policy()
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    emit(factory, pid)
    assert deliver(factory) == 1
    r = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=admin)
    assert secret not in r.text and "hunter2" not in r.text
    [entry] = r.json()["items"]
    assert entry["last_status_code"] == 500 and entry["last_error"] == "http_status"
    with factory() as s:
        stored = s.scalars(select(WebhookDelivery)).one()
        assert "hunter2" not in json.dumps([stored.last_error, stored.payload])


def test_redirects_are_not_followed(client, admin, receiver):
    rx = receiver(
        always_fail=True, fail_status=302, fail_headers={"Location": "http://169.254.169.254/"}
    )
    factory = quiet_app(client)
    client.app.state.webhook_policy = local_policy()
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    emit(factory, pid)
    assert deliver(factory) == 1
    [entry] = log_of(client, admin, hook["id"])
    assert entry["last_status_code"] == 302 and entry["last_error"] == "http_status"
    assert len(rx.received()) == 1


def test_network_failures_share_one_category(client, admin, receiver):
    """Closed port, timeout and a name that does not resolve look the same: no port scanner."""
    slow = receiver(delay_s=1.5)
    factory = quiet_app(client)
    dns = FakeDns({"slow.example": "127.0.0.1", "closed.example": "127.0.0.1"})
    client.app.state.webhook_policy = local_policy(dns)
    pid = make_project(client, admin)["id"]
    hooks = [
        register_ok(client, admin, pid, url)["id"]
        for url in (
            f"http://closed.example:{closed_port()}/",
            f"http://slow.example:{slow.port}/",
            "http://gone.example/",
        )
    ]
    emit(factory, pid)
    assert deliver(factory, policy=local_policy(dns), timeout_s=0.3) == 3
    for hook_id in hooks:
        [entry] = log_of(client, admin, hook_id)
        assert (entry["last_status_code"], entry["last_error"]) == (None, "unreachable")


# --- ids -------------------------------------------------------------------------------------


def test_webhook_and_delivery_ids_are_never_reused_after_a_delete(client, admin):
    """PostgreSQL's sequences and SQLite's AUTOINCREMENT (migration 0005) both hold this."""
    factory = quiet_app(client)
    pid = make_project(client, admin)["id"]
    first = register_ok(client, admin, pid, "https://first.example/h")
    emit(factory, pid)
    emit(factory, pid)
    old_deliveries = {d["id"] for d in log_of(client, admin, first["id"])}
    assert len(old_deliveries) == 2
    # the newest webhook and its deliveries (the newest rows) go away
    assert client.delete(f"/v1/webhooks/{first['id']}", headers=admin).status_code == 204
    second = register_ok(client, admin, pid, "https://second.example/h")
    assert second["id"] > first["id"]
    emit(factory, pid)
    [new] = log_of(client, admin, second["id"])
    assert new["id"] > max(old_deliveries)
