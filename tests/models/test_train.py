"""fit(): progress it/total, per-epoch history, checkpoint, StopRequested between batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from models.errors import StopRequested
from models.loader import Batches
from models.train import fit, resolve_device


class _RegressionStep:
    def __init__(self) -> None:
        self.model = nn.Linear(2, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

    def train(self) -> None:
        self.model.train()

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, float]:
        loss = (self.model(batch["x"]).squeeze(1) - batch["y"]).square().mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}


def _loader() -> Batches:
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    return Batches({"x": x, "y": x @ torch.tensor([2.0, -1.0])}, 8, seed=0, flip=False)


def test_fit_learns_and_reports_progress() -> None:
    calls: list[float] = []
    result = fit(
        _RegressionStep(),
        _loader(),
        epochs=6,
        device=torch.device("cpu"),
        on_progress=lambda f, m: calls.append(f),
        seed=0,
    )
    assert result.iterations == 30
    assert calls == pytest.approx([i / 30 for i in range(1, 31)])
    assert result.history[-1]["loss"] < 0.2 * result.history[0]["loss"]
    assert set(result.checkpoint) == {"model", "optimizer", "step"}
    assert result.checkpoint["step"] == 30


def test_stop_requested_between_batches() -> None:
    seen: list[float] = []
    with pytest.raises(StopRequested):
        fit(
            _RegressionStep(),
            _loader(),
            epochs=3,
            device=torch.device("cpu"),
            on_progress=lambda f, m: seen.append(f),
            should_stop=lambda: len(seen) >= 4,
        )
    assert len(seen) == 4


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


class _ScheduledStep(_RegressionStep):
    """Records the learning-rate factor fit() hands it before each batch."""

    def __init__(self) -> None:
        super().__init__()
        self.factors: list[float] = []

    def set_lr_factor(self, factor: float) -> None:
        self.factors.append(factor)
        for group in self.optimizer.param_groups:
            group["lr"] = 0.1 * factor


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_fit_schedules_the_learning_rate(schedule: str) -> None:
    step = _ScheduledStep()
    fit(step, _loader(), epochs=8, device=torch.device("cpu"), seed=0, lr_schedule=schedule)
    f = step.factors
    assert len(f) == 40
    if schedule == "constant":
        assert set(f) == {1.0}
        return
    peak = f.index(max(f))
    assert f[0] == pytest.approx(0.1) and max(f) == pytest.approx(1.0, abs=0.02)
    assert all(a >= b for a, b in zip(f[peak:], f[peak + 1 :], strict=False))
    assert f[-1] < 0.05
