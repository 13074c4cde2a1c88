"""The precision knob on CPUs with and without native bfloat16 (models/precision.py)."""

from __future__ import annotations

import logging

import pytest
import torch

from models import precision
from models.precision import autocast_dtype, cpu_has_fast_bf16

CPU = torch.device("cpu")


def test_fast_bf16_needs_more_than_avx2() -> None:
    """oneDNN's check agrees with the vector extensions torch reports: a CPU that stops at
    AVX2 (or below) has no native bfloat16."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("DEFAULT", "AVX2", "NO AVX"):
        assert cpu_has_fast_bf16() is False
    assert isinstance(cpu_has_fast_bf16(), bool)


def test_emulated_bf16_is_still_bf16_and_says_once_what_it_costs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Asking for bf16 on a CPU that emulates it keeps bf16 (runs stay comparable) and logs
    one warning per process, not one per batch; fp32 and auto log nothing."""
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    precision._warn_emulated_bf16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="models.precision"):
        assert autocast_dtype(CPU, "fp32") is None
        assert autocast_dtype(CPU, "auto") is None
        assert not caplog.records
        for _ in range(3):
            assert autocast_dtype(CPU, "bf16") is torch.bfloat16
    assert len(caplog.records) == 1
    assert "emulated" in caplog.records[0].getMessage()
    precision._warn_emulated_bf16.cache_clear()


def test_native_bf16_logs_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    precision._warn_emulated_bf16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="models.precision"):
        assert autocast_dtype(CPU, "bf16") is torch.bfloat16
    assert not caplog.records
