"""FastAPI dependencies: the request's unit of work, settings, blobs and the caller's key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.blobs import BlobStore
from app.services.keys import authenticate
from app.services.scope import Principal
from app.settings import Settings
from app.unit_of_work import UnitOfWork


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
            await run_in_threadpool(uow.commit)
        except BaseException:
            await run_in_threadpool(uow.rollback)
            raise
        finally:
            await run_in_threadpool(uow.close)


UowDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


def get_session(uow: UowDep) -> Session:
    return uow.session


SessionDep = Annotated[Session, Depends(get_session)]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_blobs(request: Request) -> BlobStore:
    return request.app.state.blobs


BlobsDep = Annotated[BlobStore, Depends(get_blobs)]


def current_principal(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization")
    cache = request.app.state.principals
    if not header or cache is None:
        return authenticate(session, header)
    return cache.get(header, lambda: authenticate(session, header))


CurrentKey = Annotated[Principal, Depends(current_principal)]


def require_role(role: str) -> Callable[[Principal], Principal]:
    def _check(who: CurrentKey) -> Principal:
        who.require(role)
        return who

    return _check


Annotator = Annotated[Principal, Depends(require_role("annotator"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
