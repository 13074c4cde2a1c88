"""Stage checkpoints: a finished stage's outputs in the blob store, keyed by (job, stage)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.services.blob_refs import delete_unreferenced
from app.tables import JobCheckpoint
from worker.context import WorkerContext


class StageCheckpoints:
    def __init__(self, ctx: WorkerContext, job_id: int) -> None:
        self.ctx = ctx
        self.job_id = job_id

    def load(self, stage: str) -> bytes | None:
        with self.ctx.sessionmaker() as s:
            key = s.scalar(
                select(JobCheckpoint.blob_key).where(
                    JobCheckpoint.job_id == self.job_id, JobCheckpoint.stage == stage
                )
            )
        return None if key is None else self.ctx.blobs.get(key)

    def save(self, stage: str, data: bytes) -> None:
        """Store once; a second save of the same stage (a re-run) keeps the first."""
        key, _ = self.ctx.blobs.put(data)
        try:
            with self.ctx.sessionmaker.begin() as s:
                s.add(JobCheckpoint(job_id=self.job_id, stage=stage, blob_key=key))
        except IntegrityError:
            pass

    def stages(self) -> list[str]:
        with self.ctx.sessionmaker() as s:
            return list(
                s.scalars(
                    select(JobCheckpoint.stage)
                    .where(JobCheckpoint.job_id == self.job_id)
                    .order_by(JobCheckpoint.id)
                )
            )

    def clear(self) -> int:
        """Drop the job's checkpoints and the blobs no other row holds; returns how many.

        Called once the job's final status committed: resuming is then over, and a
        pipeline's stage states (two segmenters each on a pretrained backbone, ~26 MB a
        stage) would otherwise stay in the blob store for good. The networks a run delivers
        live on as its model versions.
        """
        with self.ctx.sessionmaker.begin() as s:
            keys = list(
                s.scalars(
                    delete(JobCheckpoint)
                    .where(JobCheckpoint.job_id == self.job_id)
                    .returning(JobCheckpoint.blob_key)
                )
            )
        if keys:
            with self.ctx.sessionmaker() as s:
                delete_unreferenced(s, self.ctx.blobs, keys)
        return len(keys)
