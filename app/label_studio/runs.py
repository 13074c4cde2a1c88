"""The networks of a project's latest finished labeling run, loaded once per API process.

A pipeline run saves each network as a model version (worker/writeback.py): a torch file
`{"network", "state_dict", "meta"}` per network, meta holding the run's config, class
count and background flag. The segmenters S_a, S_b and the discriminator of the newest
succeeded run are what labels a new image here.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sqlalchemy import bindparam, func, select

from app.blobs import BlobStore
from app.lru import LruCache
from app.tables import Job, ModelVersion
from models.inference import Prediction, Predictor

NETWORKS = ("s_a", "s_b", "disc")

# The newest succeeded pipeline job of a project that saved every network in NETWORKS
# (param project_id); one row per network.
_LATEST_RUN = (
    select(Job.id)
    .join(ModelVersion, ModelVersion.job_id == Job.id)
    .where(
        Job.project_id == bindparam("project_id"),
        Job.kind == "pipeline",
        Job.status == "succeeded",
        ModelVersion.network.in_(NETWORKS),
    )
    .group_by(Job.id)
    .having(func.count(func.distinct(ModelVersion.network)) == len(NETWORKS))
    .order_by(Job.id.desc())
    .limit(1)
    .scalar_subquery()
)
LATEST_RUN_NETWORKS = select(
    ModelVersion.job_id, ModelVersion.network, ModelVersion.blob_key
).where(ModelVersion.job_id == _LATEST_RUN, ModelVersion.network.in_(NETWORKS))


@dataclass(frozen=True)
class Run:
    job_id: int
    blob_keys: dict[str, str]  # network → blob key of its saved weights


def latest_run(rows: list[Any]) -> Run | None:
    """The Run of LATEST_RUN_NETWORKS rows, None when the project has no finished run."""
    if not rows:
        return None
    return Run(rows[0].job_id, {r.network: r.blob_key for r in rows})


def load_model_state(blobs: BlobStore, run: Run) -> dict[str, Any]:
    """PipelineResult.model_state-like: the networks' weights plus the saved meta."""
    state: dict[str, Any] = {}
    for network, key in run.blob_keys.items():
        saved = torch.load(io.BytesIO(blobs.get(key)), map_location="cpu", weights_only=True)
        state.update(saved["meta"])
        state[network] = saved["state_dict"]
    return state


class RunPredictors:
    """Built predictors by run (a few kept), and one prediction at a time per process.

    One at a time: inference already uses every core; two at once only take longer each.
    """

    def __init__(self, keep: int = 2, device: str = "auto") -> None:
        self._built = LruCache[Predictor](keep)
        self._lock = threading.Lock()
        self.device = device

    def predict(
        self, blobs: BlobStore, run: Run, image: np.ndarray, tags: frozenset[int]
    ) -> Prediction:
        """Label one RGB image; `tags` empty: every class may appear."""
        with self._lock:
            predictor = self._built.get(run.job_id)
            if predictor is None:
                predictor = Predictor(load_model_state(blobs, run), device=self.device)
                self._built.put(run.job_id, predictor)
            everything = frozenset(range(1, predictor.num_classes + 1))
            return predictor([image], [tags or everything])[0]
