"""A request's unit of work: one session, the blobs it created, and after-commit actions.

The request boundary commits (services never do). When the request fails, the session rolls
back and every blob this request created that no committed row references is deleted, so
bad input leaves nothing behind. Actions such as sending a job id to the broker run only
after the commit succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.blobs import BlobStore
from app.services.blob_refs import delete_unreferenced

log = logging.getLogger(__name__)


class UnitOfWork:
    def __init__(self, factory: sessionmaker[Session], blobs: BlobStore) -> None:
        self._factory = factory
        self.session = factory()
        self.blobs = blobs
        self._created: list[str] = []
        self._after_commit: list[Callable[[], Any]] = []
        self._maybe_orphaned: list[str] = []

    def put_blob(self, data: bytes) -> str:
        """Store bytes; remember the key when this call created the blob."""
        key, created = self.blobs.put(data)
        if created:
            self._created.append(key)
        return key

    def put_blob_chunks(self, chunks: Iterable[bytes]) -> str:
        key, created = self.blobs.put_chunks(chunks)
        if created:
            self._created.append(key)
        return key

    def after_commit(self, action: Callable[[], Any]) -> None:
        self._after_commit.append(action)

    def release_blobs_after_commit(self, keys: Iterable[str]) -> None:
        """Blobs whose rows this request deletes: removed after commit if nothing else uses them."""
        self._maybe_orphaned.extend(keys)

    def commit(self) -> None:
        self.session.commit()
        self._created.clear()
        actions, self._after_commit = self._after_commit, []
        if self._maybe_orphaned:
            keys, self._maybe_orphaned = self._maybe_orphaned, []
            actions.insert(0, lambda: self._collect(keys))
        for action in actions:
            try:
                action()
            except Exception:  # the commit stands; the reaper re-sends lost job ids
                log.exception("after-commit action failed")

    def rollback(self) -> None:
        self.session.rollback()
        self._after_commit.clear()
        self._maybe_orphaned.clear()
        if self._created:
            keys, self._created = self._created, []
            self._collect(keys)

    def _collect(self, keys: list[str]) -> None:
        with self._factory() as s:
            delete_unreferenced(s, self.blobs, keys)

    def close(self) -> None:
        self.session.close()


class Savepoint:
    """All-or-nothing for one item of a batch inside the request's unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def __enter__(self) -> Savepoint:
        open_sqlite_transaction(self.uow.session)
        self._nested = self.uow.session.begin_nested()
        self._mark = len(self.uow._created)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        if exc_type is None:
            self._nested.commit()
            return False
        self._nested.rollback()
        mine = self.uow._created[self._mark :]
        del self.uow._created[self._mark :]
        # Checked in this session, so blobs that earlier items of the batch use are kept.
        delete_unreferenced(self.uow.session, self.uow.blobs, mine)
        return False


def open_sqlite_transaction(session: Session) -> None:
    """Make sure SQLite is inside a real transaction before a SAVEPOINT.

    pysqlite emits BEGIN only before DML, so a SAVEPOINT issued first would itself open the
    transaction, and its RELEASE would commit it: the request could no longer roll back.
    IMMEDIATE because a batch is about to write (no read-to-write lock upgrade to fail).
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    dbapi_conn = session.connection().connection.driver_connection
    if dbapi_conn is not None and not dbapi_conn.in_transaction:
        dbapi_conn.execute("BEGIN IMMEDIATE")
