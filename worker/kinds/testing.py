"""Job kinds for tests only (enabled by TAG2MASK_ENABLE_TEST_KINDS=1): sleep, fail."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.tables import Mask
from worker.job_context import JobContext
from worker.kinds import InvalidParams, JobKind


def _validate_sleep(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - {"steps", "step_s", "write_image_id"}
    if unknown:
        raise InvalidParams(f"Unknown params: {sorted(unknown)}.")
    return {
        "steps": int(params.get("steps", 10)),
        "step_s": float(params.get("step_s", 0.1)),
        "write_image_id": params.get("write_image_id"),
    }


def _run_sleep(jc: JobContext) -> dict[str, Any]:
    """Steps with checkpoints after each half; optionally writes one pseudo-mask row at the end."""
    steps, step_s = jc.params["steps"], jc.params["step_s"]
    half = steps // 2
    for stage, lo, hi, (a, b) in (
        ("first", 0.0, 0.5, (0, half)),
        ("second", 0.5, 1.0, (half, steps)),
    ):
        jc.reporter.stage(stage, lo, hi)
        if jc.checkpoints.load(stage) is not None:
            jc.reporter.event(f"stage {stage} restored from checkpoint")
            continue
        for i in range(a, b):
            jc.check_cancel()
            time.sleep(step_s)
            jc.reporter.progress((i - a + 1) / max(b - a, 1), {"step": i + 1})
        jc.checkpoints.save(stage, b"done")
    image_id = jc.params.get("write_image_id")
    if image_id is not None:
        key, _ = jc.ctx.blobs.put(f"pseudo of {image_id}".encode())
        try:
            with jc.ctx.sessionmaker.begin() as s:
                s.add(
                    Mask(
                        image_id=image_id,
                        project_id=jc.project_id,
                        source="pseudo",
                        blob_key=key,
                        job_id=jc.job_id,
                        review_state="pending",
                        stats={},
                    )
                )
        except IntegrityError:
            pass  # a re-run writes each image's result once
    return {"steps": steps}


def _run_fail(jc: JobContext) -> dict[str, Any]:
    jc.reporter.stage("explode", 0.0, 1.0)
    raise RuntimeError("boom: the test kind failed on purpose")


KINDS = (
    JobKind("sleep", _validate_sleep, _run_sleep),
    JobKind("fail", lambda p: dict(p), _run_fail),
)
