"""The ASGI application: create_app(settings) wires engine, sessions, blobs and routers."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry

from app.api.http_errors import install_http_error_handlers
from app.api.list_cache import CoalescedReads, ListPageCache, VersionReads, read_list_version
from app.api.responses import declare_errors
from app.api.routes import (
    exports,
    health,
    images,
    jobs,
    keys,
    label_studio_backend,
    label_studio_config,
    mask_files,
    masks,
    projects,
    review,
    review_page,
    webhooks,
)
from app.api.signed_cors import SignedUrlCors
from app.auth_cache import PrincipalCache
from app.blobs import LocalBlobStore
from app.db import make_engine, make_sessionmaker, max_connections
from app.errors import UnhandledErrors, install_error_handlers
from app.label_studio.runs import RunPredictors
from app.limits import BodySizeLimit
from app.lru import LruCache
from app.metrics import HttpMetrics, JobCollector
from app.pg_reads import PgReader
from app.services.jobs import read_job_stats
from app.services.projects import ProjectRef
from app.settings import Settings, get_settings
from app.signing import UrlSigner
from app.webhook_targets import TargetPolicy
from worker.context import WorkerContext
from worker.runner import make_runner


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for `settings` (the environment's when None). Nothing happens at import."""
    settings = settings or get_settings()
    settings.ensure_dirs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run on anyio's thread pool; fewer threads than its default 40 means
        # less GIL contention under load (the database pool bounds concurrency anyway).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        app.state.runner.start()
        # Everything loaded so far (about 140k objects: FastAPI, SQLAlchemy, numpy...) lives
        # as long as the process: keep it out of the collector, whose full collections
        # otherwise scan it all (60 ms each, a stall for every request in flight).
        gc.freeze()
        try:
            yield
        finally:
            app.state.runner.shutdown()
            app.state.worker_ctx.dispose()
            app.state.engine.dispose()
            for pool in (app.state.pg_reader, app.state.pg_writer):
                if pool is not None:
                    await pool.close()

    app = FastAPI(title="tag2mask", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = make_engine(settings.db_url, pool_size=settings.db_pool_size)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    app.state.db_slots = anyio.Semaphore(max_connections(settings.db_pool_size))
    postgres = settings.db_url.startswith("postgresql+psycopg://")
    # Autocommit pools for the lean routes: reads, and uploads as one statement each.
    app.state.pg_reader = (
        PgReader(settings.db_url, settings.db_read_pool_size) if postgres else None
    )
    app.state.pg_writer = (
        PgReader(settings.db_url, settings.db_write_pool_size) if postgres else None
    )
    app.state.blobs = LocalBlobStore(settings.blob_dir)
    app.state.signer = UrlSigner.from_settings(settings)
    app.state.ls_predictors = RunPredictors()  # the Label Studio ML backend's networks
    # Content-addressed, so never stale: small blobs (masks, thumbnails) and their COCO RLE.
    app.state.blob_cache = LruCache[bytes](
        settings.blob_cache_mb << 20, cost=len, max_item_cost=1 << 20
    )
    app.state.rle_cache = LruCache[tuple](4096)
    app.state.project_refs = LruCache[ProjectRef](1024)  # see app.api.lean.lean_project
    app.state.principals = (
        PrincipalCache(settings.auth_cache_ttl_s) if settings.auth_cache_ttl_s > 0 else None
    )
    app.state.registry = registry = CollectorRegistry()
    # Rendered list pages (PostgreSQL only: the triggers that version them are its own).
    app.state.list_pages = (
        ListPageCache(settings.list_cache_mb << 20, registry)
        if postgres and settings.list_cache_mb > 0
        else None
    )
    app.state.list_versions = VersionReads(partial(read_list_version, app.state.pg_reader))
    app.state.page_renders = CoalescedReads[tuple, Any]()  # list pages being rendered
    app.state.worker_ctx = WorkerContext.from_settings(settings)
    app.state.runner = make_runner(settings, app.state.worker_ctx)
    # Where webhooks may point; `resolver` is the hook tests use to play DNS.
    app.state.webhook_policy = TargetPolicy.from_networks(settings.webhook_allow_networks)

    registry.register(JobCollector(lambda: read_job_stats(app.state.sessionmaker)))

    install_error_handlers(app)
    routers = (
        health.router,
        projects.router,
        images.router,
        masks.router,
        jobs.router,
        review.router,
        mask_files.router,
        review_page.router,
        exports.router,
        webhooks.router,
        keys.router,
        label_studio_config.router,
        label_studio_backend.router,
    )
    for router in routers:
        declare_errors(router.routes)
        app.include_router(router)
    install_http_error_handlers(
        app, [*app.router.routes, *(r for router in routers for r in router.routes)]
    )

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "X-Mask-Id", "X-Mask-Source", "X-Image-Id"],
        )
    app.add_middleware(SignedUrlCors)  # Label Studio loads images cross-origin
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(UnhandledErrors)  # a JSON 500 that keeps the connection open
    app.add_middleware(HttpMetrics, registry=registry)
    return app
