"""Exceptions raised by the models package."""

from __future__ import annotations


class StopRequested(Exception):
    """should_stop() answered True between two batches; the run stops without a result."""


class NotEnoughData(ValueError):
    """The input cannot train the requested stage (e.g. no image at all)."""
