"""Webhooks: registration rules, the outbox, and signed deliveries to a real HTTP receiver.

The receiver is a real `http.server` on 127.0.0.1, a network the operator must allow
(TAG2MASK_WEBHOOK_ALLOW_NETWORKS; what is refused without it: test_webhook_security.py).
The dispatcher is called directly (with a fixed clock where timing matters) after the app's
own dispatcher thread is stopped, and the loop thread is checked on its own.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.services.webhooks import enqueue_event
from app.tables import WebhookDelivery, utcnow
from tests.fixtures.build import make_project
from tests.fixtures.webhooks import (
    LOOPBACK_ALLOWED,
    bearer,
    closed_port,
    deliver,
    emit,
    local_policy,
    log_of,
    quiet_app,
    register,
    register_ok,
    signature_ok,
    ts,
)
from worker.webhook_dispatch import WebhookDispatcher


@pytest.fixture
def client(make_client):
    """The app of an operator who allowed the loopback network the receivers listen on."""
    return make_client(webhook_allow_networks=LOOPBACK_ALLOWED)


# --- registration ----------------------------------------------------------------------------


def test_secret_is_returned_once_and_never_listed(client, admin):
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, "https://example.com/hooks/t2m")
    assert hook["project_id"] == pid and hook["url"] == "https://example.com/hooks/t2m"
    assert hook["events"] == ["job.finished", "mask.reviewed"] and hook["active"] is True
    assert len(hook["secret"]) >= 32
    mine = register_ok(
        client, admin, pid, "http://127.0.0.1:9/x", events=["mask.reviewed"], secret="s" * 20
    )
    assert mine["secret"] == "s" * 20 and mine["events"] == ["mask.reviewed"]
    listed = client.get(f"/v1/projects/{pid}/webhooks", headers=admin)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [h["id"] for h in items] == [hook["id"], mine["id"]]
    assert all("secret" not in h for h in items)
    assert hook["secret"] not in listed.text and "s" * 20 not in listed.text
    assert log_of(client, admin, hook["id"]) == []


def test_duplicate_events_are_collapsed(client, admin):
    pid = make_project(client, admin)["id"]
    hook = register_ok(
        client, admin, pid, "http://x.test/", events=["mask.reviewed", "job.finished"] * 2
    )
    assert hook["events"] == ["job.finished", "mask.reviewed"]


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/hook"},
        {"url": "file:///etc/passwd"},
        {"url": "javascript:alert(1)"},
        {"url": "127.0.0.1:8000/hook"},
        {"url": "/relative/path"},
        {"url": "http://"},
        {"url": "http://exa mple.com/"},
        {"url": "http://example.com:99999/"},
        {"url": ""},
        {"url": "https://example.com/" + "a" * 2000},
        {"url": "https://example.com/", "events": ["job.started"]},
        {"url": "https://example.com/", "events": []},
        {"url": "https://example.com/", "secret": "short"},
        {"url": "https://example.com/", "active": False},
        {"events": ["job.finished"]},
    ],
)
def test_invalid_registrations_are_validation_errors(client, admin, body):
    pid = make_project(client, admin)["id"]
    r = client.post(f"/v1/projects/{pid}/webhooks", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert client.get(f"/v1/projects/{pid}/webhooks", headers=admin).json()["items"] == []


def test_roles_and_project_scope(client, admin, new_key):
    pid = make_project(client, admin)["id"]
    other = make_project(client, admin, name="other")["id"]
    hook = register_ok(client, admin, pid, "https://example.com/h")
    viewer = bearer(new_key("viewer"))
    annotator = bearer(new_key("annotator", pid))
    for weak in (viewer, annotator):
        r = register(client, weak, pid, "https://example.com/h2")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert client.delete(f"/v1/webhooks/{hook['id']}", headers=weak).status_code == 403
        assert client.get(f"/v1/projects/{pid}/webhooks", headers=weak).status_code == 403
        assert client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=weak).status_code == 403

    elsewhere = bearer(new_key("admin", other))
    for r in (
        register(client, elsewhere, pid, "https://example.com/h3"),
        client.get(f"/v1/projects/{pid}/webhooks", headers=elsewhere),
        client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=elsewhere),
        client.delete(f"/v1/webhooks/{hook['id']}", headers=elsewhere),
    ):
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # its own project is fine for a scoped admin
    here = bearer(new_key("admin", pid))
    assert register(client, here, pid, "https://example.com/h4").status_code == 201
    assert len(client.get(f"/v1/projects/{pid}/webhooks", headers=here).json()["items"]) == 2
    # nothing there
    assert register(client, admin, 9999, "https://example.com/h").status_code == 404
    assert client.get("/v1/webhooks/9999/deliveries", headers=admin).status_code == 404
    assert client.delete("/v1/webhooks/9999", headers=admin).status_code == 404
    assert client.get(f"/v1/projects/{pid}/webhooks", headers={}).status_code == 401


def test_delete_removes_the_webhook_and_its_log(client, admin, settings):
    factory = quiet_app(client)
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, "https://example.com/h")
    assert emit(factory, pid) == 1
    assert len(log_of(client, admin, hook["id"])) == 1
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=admin).status_code == 204
    assert client.get(f"/v1/projects/{pid}/webhooks", headers=admin).json()["items"] == []
    assert client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=admin).status_code == 404
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=admin).status_code == 404
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert emit(factory, pid) == 0


# --- the outbox ------------------------------------------------------------------------------


def test_enqueue_event_records_one_row_per_subscribed_webhook(client, admin):
    factory = quiet_app(client)
    pid = make_project(client, admin)["id"]
    other = make_project(client, admin, name="other")["id"]
    jobs = register_ok(client, admin, pid, "https://a.test/", events=["job.finished"])
    both = register_ok(client, admin, pid, "https://b.test/")
    reviews = register_ok(client, admin, pid, "https://c.test/", events=["mask.reviewed"])
    register_ok(client, admin, other, "https://d.test/")

    assert emit(factory, pid, "job.finished", job_id=7, at=utcnow()) == 2
    assert emit(factory, pid, "mask.reviewed", mask_id=3) == 2
    assert [d["event"] for d in log_of(client, admin, jobs["id"])] == ["job.finished"]
    assert [d["event"] for d in log_of(client, admin, reviews["id"])] == ["mask.reviewed"]
    entries = log_of(client, admin, both["id"])
    assert [d["event"] for d in entries] == ["job.finished", "mask.reviewed"]
    first = entries[0]
    assert first["status"] == "pending" and first["attempts"] == 0
    assert first["last_status_code"] is None and first["delivered_at"] is None
    assert first["payload"]["job_id"] == 7 and isinstance(first["payload"]["at"], str)
    # keyset paging of the log
    assert [d["id"] for d in log_of(client, admin, both["id"], after=first["id"])] == [
        entries[1]["id"]
    ]
    assert len(log_of(client, admin, both["id"], limit=1)) == 1

    # in the caller's transaction: rolled back, nothing is left
    with factory() as s:
        assert enqueue_event(s, pid, "job.finished", {"job_id": 8}) == 2
        s.rollback()
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 4
        with pytest.raises(ValueError, match="unknown webhook event"):
            enqueue_event(s, pid, "job.started", {})


# --- delivery --------------------------------------------------------------------------------


def test_delivery_is_signed_and_logged(client, admin, receiver):
    factory = quiet_app(client)
    rx = receiver()
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    emit(factory, pid, "mask.reviewed", mask_id=5, review_state="accepted")

    before = time.time()
    assert deliver(factory) == 1
    [req] = rx.received()
    assert req.path == "/hook"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-tag2mask-event"] == "mask.reviewed"
    assert abs(int(req.headers["x-tag2mask-timestamp"]) - before) <= 5
    assert signature_ok(hook["secret"], req)
    assert not signature_ok("some other secret!", req)
    body = req.json()
    [entry] = log_of(client, admin, hook["id"])
    assert req.headers["x-tag2mask-delivery"] == str(entry["id"]) == str(body["id"])
    assert body["event"] == "mask.reviewed"
    assert body["data"] == {"mask_id": 5, "review_state": "accepted"}
    assert ts(body["created_at"]) == ts(entry["created_at"])
    assert entry["status"] == "delivered" and entry["attempts"] == 1
    assert entry["last_status_code"] == 200 and entry["last_error"] is None
    assert entry["delivered_at"] is not None and entry["next_attempt_at"] is None
    # delivered once: nothing more is due
    assert deliver(factory) == 0
    assert len(rx.received()) == 1


def test_failing_receiver_is_retried_with_backoff_until_it_succeeds(client, admin, receiver):
    factory = quiet_app(client)
    rx = receiver(fail_first=2)
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    emit(factory, pid)
    t0 = utcnow()
    opts = {"backoff_base_s": 10.0, "max_attempts": 5}

    assert deliver(factory, now=t0, **opts) == 1
    [entry] = log_of(client, admin, hook["id"])
    assert entry["status"] == "pending" and entry["attempts"] == 1
    assert entry["last_status_code"] == 500 and entry["last_error"] == "http_status"
    t1 = ts(entry["next_attempt_at"])
    assert t0 + timedelta(seconds=10) <= t1 <= t0 + timedelta(seconds=20)  # 10 * 2**1, jittered
    assert deliver(factory, now=t1 - timedelta(seconds=1), **opts) == 0  # not due yet

    assert deliver(factory, now=t1, **opts) == 1
    [entry] = log_of(client, admin, hook["id"])
    assert entry["status"] == "pending" and entry["attempts"] == 2
    assert entry["last_status_code"] == 500
    t2 = ts(entry["next_attempt_at"])
    assert t1 + timedelta(seconds=20) <= t2 <= t1 + timedelta(seconds=40)  # 10 * 2**2

    assert deliver(factory, now=t2, **opts) == 1
    [entry] = log_of(client, admin, hook["id"])
    assert entry["status"] == "delivered" and entry["attempts"] == 3
    assert entry["last_status_code"] == 200 and entry["last_error"] is None
    reqs = rx.received()
    assert len(reqs) == 3
    assert {r.headers["x-tag2mask-delivery"] for r in reqs} == {str(entry["id"])}
    assert all(signature_ok(hook["secret"], r) for r in reqs)
    assert deliver(factory, now=t2 + timedelta(days=1), **opts) == 0


def test_receiver_that_always_fails_ends_failed_after_max_attempts(client, admin, receiver):
    factory = quiet_app(client)
    rx = receiver(always_fail=True, fail_status=503)
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    emit(factory, pid)
    later = utcnow()
    for attempt in (1, 2, 3):
        later += timedelta(hours=2)  # past any backoff
        assert deliver(factory, now=later, max_attempts=3) == 1
        [entry] = log_of(client, admin, hook["id"])
        assert entry["attempts"] == attempt
    assert entry["status"] == "failed" and entry["last_status_code"] == 503
    assert entry["last_error"] == "http_status"
    assert entry["next_attempt_at"] is None and entry["delivered_at"] is None
    assert deliver(factory, now=later + timedelta(days=30), max_attempts=3) == 0
    assert len(rx.received()) == 3


def test_unreachable_receiver_records_the_network_error(client, admin):
    factory = quiet_app(client)
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, f"http://127.0.0.1:{closed_port()}/hook")
    emit(factory, pid)
    t0 = utcnow()
    assert deliver(factory, now=t0, backoff_base_s=1.0) == 1
    [entry] = log_of(client, admin, hook["id"])
    assert entry["status"] == "pending" and entry["attempts"] == 1
    assert entry["last_status_code"] is None
    assert entry["last_error"] == "unreachable"
    assert ts(entry["next_attempt_at"]) <= t0 + timedelta(seconds=2)


def test_slow_receiver_times_out(client, admin, receiver):
    factory = quiet_app(client)
    rx = receiver(delay_s=1.5)
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    emit(factory, pid)
    started = time.monotonic()
    assert deliver(factory, timeout_s=0.3) == 1
    assert time.monotonic() - started < 1.4
    [entry] = log_of(client, admin, hook["id"])
    assert entry["status"] == "pending" and entry["last_status_code"] is None
    assert entry["last_error"] == "unreachable"


def test_concurrent_dispatchers_send_each_delivery_once(client, admin, receiver):
    factory = quiet_app(client)
    rx = receiver(delay_s=0.05)
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    for i in range(12):
        emit(factory, pid, job_id=i)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while deliver(factory, batch_size=2):
                pass
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    ids = [r.headers["x-tag2mask-delivery"] for r in rx.received()]
    assert len(ids) == 12 and len(set(ids)) == 12
    entries = log_of(client, admin, hook["id"])
    assert {(e["status"], e["attempts"]) for e in entries} == {("delivered", 1)}
    assert sorted(r.json()["data"]["job_id"] for r in rx.received()) == list(range(12))


def test_dispatcher_thread_retries_until_delivered(client, admin, receiver):
    factory = quiet_app(client)
    rx = receiver(fail_first=2)
    pid = make_project(client, admin)["id"]
    hook = register_ok(client, admin, pid, rx.url)
    emit(factory, pid)
    dispatcher = WebhookDispatcher(
        factory, interval_s=0.05, backoff_base_s=0.01, policy=local_policy()
    ).start()
    try:
        deadline = time.monotonic() + 20
        while log_of(client, admin, hook["id"])[0]["status"] != "delivered":
            assert time.monotonic() < deadline, log_of(client, admin, hook["id"])
            time.sleep(0.05)
    finally:
        dispatcher.stop()
    assert not dispatcher.running
    [entry] = log_of(client, admin, hook["id"])
    assert entry["attempts"] == 3 and entry["last_status_code"] == 200
    assert len(rx.received()) == 3
