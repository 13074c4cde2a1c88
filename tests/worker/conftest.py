"""Worker tests: test-only job kinds on, fast heartbeats, helpers to poll jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(autouse=True)
def _test_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAG2MASK_ENABLE_TEST_KINDS", "1")


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll until `predicate()` is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def poll_job(
    client: TestClient,
    headers: dict[str, str],
    job_id: int,
    statuses: set[str],
    timeout: float = 60.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll a job until its status is in `statuses`; returns it and every snapshot seen."""
    seen: list[dict[str, Any]] = []

    def done() -> dict[str, Any] | None:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        seen.append(job)
        return job if job["status"] in statuses else None

    return wait_for(done, timeout, 0.05, f"job {job_id} to reach {statuses}"), seen
