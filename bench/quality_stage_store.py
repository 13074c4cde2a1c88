"""Stages of a quality run kept on disk, and restored in a later tuning run.

A semi run on two cores spends about half its time on L-Net and the supervised stage. A
tuning run that changes only knobs read after them (P-Net's, the rounds') can restore
those two stages from an earlier run's ``--stage-dir`` with ``--reuse lnet,supervised``
and compare its P-Net against the very same supervised nets. Restoring is refused when
the data, the split or any knob the restored stages read differs from the run that saved
them, so a reused stage is never a different experiment's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.config import PipelineConfig

# Stages a later run may restore, in pipeline order.
REUSABLE = ("lnet", "supervised")
# Stages saved for offline re-scoring (e.g. a new delivery rule on P-Net's own nets), never
# restored: P-Net's knobs are the ones a tuning run changes.
KEPT = ("pnet",)

# Knobs that neither L-Net nor the supervised stage reads: only P-Net, the rounds and
# prediction of the targets after them. A run may differ from the saved one in these.
LATER_KNOBS = frozenset(
    {
        "epochs_pnet",
        "epochs_round",
        "rounds",
        "continue_lr",
        "student_blend",
        "pnet_start",
        "pnet_tolerance",
        "rollback_tolerance",
        "photometric",
        # not weak_labels: the L-Net stage completes partial masks with the labels it names
        "weak_source",
        "budget_diversity",
        # read only when the delivered nets predict
        "cam_prior",
        "cam_prior_fit",
        "cam_prior_weak",
        # read by P-Net's stage, which re-labels the restored supervised nets' targets
        "cam_prior_labels",
    }
)


class StageStoreError(ValueError):
    """A stage cannot be restored: missing, or saved by a run with other data or knobs."""


def parse_reuse(text: str) -> frozenset[str]:
    names = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = names - set(REUSABLE)
    if unknown:
        raise StageStoreError(
            f"--reuse takes {', '.join(REUSABLE)}; not {', '.join(sorted(unknown))}"
        )
    return names


@dataclass(frozen=True)
class StageStore:
    """``root/<setting key>/<stage>.pt`` plus ``meta.json`` (identity and knobs)."""

    root: Path
    identity: dict[str, Any]  # data folder, max images, seed, profile: what fixes the split
    reuse: frozenset[str] = frozenset()

    def _folder(self, key: str) -> Path:
        return self.root / key

    def _meta(self, cfg: PipelineConfig) -> dict[str, Any]:
        return {"identity": self.identity, "config": cfg.to_dict()}

    def check(self, key: str, cfg: PipelineConfig) -> None:
        """Raise StageStoreError unless the stages saved for ``key`` may be restored."""
        meta_path = self._folder(key) / "meta.json"
        if not meta_path.exists():
            raise StageStoreError(f"no stages saved for {key} under {self.root}")
        saved = json.loads(meta_path.read_text())
        if saved["identity"] != self.identity:
            raise StageStoreError(
                f"{meta_path} was saved for {saved['identity']}, this run is {self.identity}"
            )
        now = cfg.to_dict()
        differ = sorted(
            k for k in set(now) | set(saved["config"]) if now.get(k) != saved["config"].get(k)
        )
        early = [k for k in differ if k not in LATER_KNOBS]
        if early:
            raise StageStoreError(
                f"{meta_path}: knobs read by the restored stages differ: "
                + ", ".join(f"{k} {saved['config'].get(k)!r} -> {now.get(k)!r}" for k in early)
            )

    def loader(self, key: str) -> Callable[[str], dict | None]:
        """load_stage for run_pipeline: the reused stages from disk, the others None
        (call check() first)."""

        def load(name: str) -> dict | None:
            if name not in self.reuse:
                return None
            path = self._folder(key) / f"{name}.pt"
            if not path.exists():
                raise StageStoreError(f"{path} is missing")
            return torch.load(path, weights_only=False)  # our own files

        return load

    def saver(self, key: str, cfg: PipelineConfig) -> Callable[[str, dict], None]:
        """save_stage hook: writes every reusable or kept stage the run computes (atomically)."""
        folder = self._folder(key)

        def save(name: str, state: dict[str, Any]) -> None:
            if name not in REUSABLE + KEPT or name in self.reuse:
                return
            folder.mkdir(parents=True, exist_ok=True)
            stale = (REUSABLE + KEPT)[(REUSABLE + KEPT).index(name) + 1 :]
            _remove(folder / f"{n}.pt" for n in stale)  # saved after this stage: not its own
            tmp = folder / f"{name}.pt.tmp"
            torch.save(state, tmp)
            tmp.replace(folder / f"{name}.pt")
            (folder / "meta.json").write_text(json.dumps(self._meta(cfg), indent=1))

        return save


def _remove(paths: Iterable[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)
