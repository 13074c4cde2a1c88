"""FastAPI dependencies: the request's unit of work, settings, blobs and the caller's key.

Every dependency here that does no I/O is `async def`: FastAPI runs a plain `def`
dependency on the thread pool, and under load each such hop (a thread hand-off and a GIL
round trip) cost more than the work it wrapped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.blobs import BlobStore
from app.services.keys import authenticate
from app.services.scope import Principal
from app.settings import Settings
from app.unit_of_work import UnitOfWork

T = TypeVar("T")


def _end(uow: UnitOfWork, commit: bool) -> None:
    """Commit (rolling back when the commit fails) or roll back, then close: one thread hop."""
    try:
        if commit:
            try:
                uow.commit()
            except BaseException:
                uow.rollback()
                raise
        else:
            uow.rollback()
    finally:
        uow.close()


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    """Commit when the route returns (before the response is sent), roll back on error.

    A request first takes one of as many slots as the database pool has connections,
    waiting without a thread. Without that, requests holding a connection while they
    wait for a free thread, and threads waiting for a free connection, can deadlock
    under load (seen at 64 concurrent clients).
    """
    async with request.app.state.db_slots:
        uow = UnitOfWork(request.app.state.sessionmaker, request.app.state.blobs)
        try:
            yield uow
        except BaseException:
            await run_in_threadpool(_end, uow, False)
            raise
        await run_in_threadpool(_end, uow, True)


UowDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


async def in_unit_of_work(request: Request, work: Callable[[UnitOfWork], T]) -> T:
    """`work(uow)` and its commit on one worker thread, for an async route that takes the
    ORM path only sometimes (same slot rule, commit and rollback as get_uow)."""

    def run(uow: UnitOfWork) -> T:
        try:
            result = work(uow)
        except BaseException:
            _end(uow, False)
            raise
        _end(uow, True)
        return result

    async with request.app.state.db_slots:
        uow = UnitOfWork(request.app.state.sessionmaker, request.app.state.blobs)
        return await run_in_threadpool(run, uow)


async def get_session(uow: UowDep) -> Session:
    return uow.session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_blobs(request: Request) -> BlobStore:
    return request.app.state.blobs


BlobsDep = Annotated[BlobStore, Depends(get_blobs)]


def authenticate_cached(request: Request, session: Session) -> Principal:
    header = request.headers.get("authorization")
    cache = request.app.state.principals
    if not header or cache is None:
        return authenticate(session, header)
    return cache.get(header, lambda: authenticate(session, header))


def cached_principal(request: Request) -> Principal | None:
    """The caller's principal when the key cache holds it (no I/O), else None."""
    header = request.headers.get("authorization")
    cache = request.app.state.principals
    if not header or cache is None:
        return None
    return cache.peek(header)


async def current_principal(request: Request, session: SessionDep) -> Principal:
    """The caller's key: from the cache without a thread hop, else looked up in the session."""
    hit = cached_principal(request)
    if hit is not None:
        return hit
    return await run_in_threadpool(authenticate_cached, request, session)


CurrentKey = Annotated[Principal, Depends(current_principal)]


def require_role(role: str) -> Callable[[Principal], Principal]:
    async def _check(who: CurrentKey) -> Principal:
        who.require(role)
        return who

    _check.required_role = role  # type: ignore[attr-defined]  # read by app/api/responses.py
    return _check


Annotator = Annotated[Principal, Depends(require_role("annotator"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
