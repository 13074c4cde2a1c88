"""What a job kind's run function gets: its job's row data, a reporter and checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.checkpoints import StageCheckpoints
from worker.context import WorkerContext
from worker.progress import JobReporter


class JobCancelled(Exception):
    """The job was asked to stop; not a failure."""


@dataclass
class JobContext:
    ctx: WorkerContext
    job_id: int
    project_id: int
    params: dict[str, Any]
    attempt: int
    reporter: JobReporter
    checkpoints: StageCheckpoints

    def should_stop(self) -> bool:
        return self.reporter.should_stop()

    def check_cancel(self) -> None:
        """Raise JobCancelled between batches when a cancel was requested."""
        if self.reporter.should_stop():
            raise JobCancelled
