"""JobReporter: stage, progress, events, heartbeat and cancel checks of a running job.

Every write uses its own short session and is guarded by the job's attempt number, so a
worker that lost its claim (the reaper re-sent the job) can neither report nor finish it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from app.tables import Job, JobEvent, utcnow
from worker.context import WorkerContext

log = logging.getLogger(__name__)


class ClaimLost(Exception):
    """Another attempt owns the job now; this one must stop without writing results."""


class WorkerShutdown(Exception):
    """The process is stopping; the job goes back to the queue and resumes elsewhere."""


class JobReporter:
    """Owned by one attempt of one job."""

    def __init__(
        self,
        ctx: WorkerContext,
        job_id: int,
        attempt: int,
        *,
        min_interval_s: float = 1.0,
        stop_check_s: float = 1.0,
        interrupted: Callable[[], bool] = lambda: False,
    ) -> None:
        self.ctx = ctx
        self.interrupted = interrupted
        self.job_id = job_id
        self.attempt = attempt
        self.min_interval_s = min_interval_s
        self.stop_check_s = stop_check_s
        self._progress = 0.0
        self._stage: str | None = None
        self._span = (0.0, 1.0)
        self._last_write = 0.0
        self._pending_metrics: dict[str, Any] = {}
        self._stop_cached = (0.0, False)
        self._lock = threading.Lock()

    def _guard(self):
        return (Job.id == self.job_id) & (Job.status == "running") & (Job.attempts == self.attempt)

    def _write(self, **values: Any) -> None:
        with self.ctx.sessionmaker.begin() as s:
            res = s.execute(update(Job).where(self._guard()).values(**values))
            if res.rowcount == 0:  # type: ignore[attr-defined]
                raise ClaimLost(f"job {self.job_id} attempt {self.attempt} no longer owns the job")

    def event(self, message: str, level: str = "info", data: dict[str, Any] | None = None) -> None:
        with self.ctx.sessionmaker.begin() as s:
            s.add(JobEvent(job_id=self.job_id, level=level, message=message, data=data))

    def stage(self, name: str, start: float, end: float) -> None:
        """Enter stage `name`; its own fractions 0..1 map onto overall progress start..end."""
        with self._lock:
            self._stage = name
            self._span = (start, end)
            self._progress = max(self._progress, start)
            self._write(stage=name, progress=self._progress, heartbeat_at=utcnow())
            self._last_write = time.monotonic()
        self.event(f"stage {name} started", data={"stage": name})

    def progress(
        self, fraction: float, metrics: dict[str, Any] | None = None, *, force: bool = False
    ) -> None:
        """Report the current stage's fraction; written at most once per interval."""
        start, end = self._span
        overall = start + (end - start) * min(max(fraction, 0.0), 1.0)
        with self._lock:
            self._progress = max(self._progress, overall)  # never decreases within an attempt
            if metrics:
                self._pending_metrics.update(metrics)
            now = time.monotonic()
            if not force and now - self._last_write < self.min_interval_s:
                return
            values: dict[str, Any] = {"progress": self._progress, "heartbeat_at": utcnow()}
            if self._pending_metrics:
                values["metrics"] = self._merged_metrics()
                self._pending_metrics = {}
            self._write(**values)
            self._last_write = now

    def _merged_metrics(self) -> dict[str, Any]:
        with self.ctx.sessionmaker() as s:
            current = s.scalar(select(Job.metrics).where(Job.id == self.job_id)) or {}
        return {**current, **self._pending_metrics}

    def set_metrics(self, metrics: dict[str, Any]) -> None:
        with self._lock:
            self._pending_metrics.update(metrics)
            self._write(metrics=self._merged_metrics())
            self._pending_metrics = {}

    def heartbeat(self) -> None:
        self._write(heartbeat_at=utcnow())

    def should_stop(self) -> bool:
        """True once a cancel was requested (read at most once a second).

        Raises ClaimLost when another attempt owns the job, WorkerShutdown when this process
        is stopping.
        """
        if self.interrupted():
            raise WorkerShutdown
        checked_at, value = self._stop_cached
        now = time.monotonic()
        if value or now - checked_at < self.stop_check_s:
            return value
        with self.ctx.sessionmaker() as s:
            row = s.execute(
                select(Job.cancel_requested, Job.status, Job.attempts).where(Job.id == self.job_id)
            ).first()
        if row is None or row.status != "running" or row.attempts != self.attempt:
            raise ClaimLost(f"job {self.job_id} attempt {self.attempt} no longer owns the job")
        self._stop_cached = (now, bool(row.cancel_requested))
        return bool(row.cancel_requested)

    @property
    def current_progress(self) -> float:
        return self._progress


class Heartbeat:
    """A daemon thread that keeps the claim alive while a long step runs without reporting."""

    def __init__(self, reporter: JobReporter, interval_s: float) -> None:
        self.reporter = reporter
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.reporter.heartbeat()
            except ClaimLost:
                return
            except Exception:  # a database hiccup: try again next beat
                log.warning("heartbeat of job %s failed", self.reporter.job_id, exc_info=True)
