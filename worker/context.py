"""What a job needs from the service: settings, a session factory and the blob store.

Each process builds its own (an engine must never cross a fork).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.blobs import LocalBlobStore
from app.db import make_engine, make_sessionmaker
from app.settings import Settings


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    blobs: LocalBlobStore
    pid: int = field(default_factory=os.getpid)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerContext:
        settings.ensure_dirs()
        engine = make_engine(settings.db_url, pool_size=2)
        return cls(settings, engine, make_sessionmaker(engine), LocalBlobStore(settings.blob_dir))

    def dispose(self) -> None:
        self.engine.dispose()


_per_process: dict[int, WorkerContext] = {}


def process_context(settings: Settings | None = None) -> WorkerContext:
    """This process's context, created on first use (so a forked child makes its own)."""
    pid = os.getpid()
    ctx = _per_process.get(pid)
    if ctx is None:
        ctx = WorkerContext.from_settings(settings or Settings())
        _per_process.clear()
        _per_process[pid] = ctx
    return ctx
