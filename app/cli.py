"""The `tag2mask` console script: serve, migrate, worker, jobs, keys."""

from __future__ import annotations

import argparse
import signal
import sys

from app import cli_jobs, cli_keys
from app.migrate import upgrade_head
from app.serve import spawn_workers, stop_workers, supervise
from app.services.keys import create_key, has_any_admin
from app.settings import Settings


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings, secret = cli_keys.in_session(
        lambda s: None if has_any_admin(s) else create_key(s, "admin", name="first admin")[1]
    )
    if secret is not None:
        print(f"First start: created an admin API key (shown once):\n{secret}", flush=True)
    where = "SQLite" if settings.is_sqlite else "PostgreSQL"
    print(
        f"tag2mask on http://{args.host}:{args.port} ({where}, data in {settings.data_dir})",
        file=sys.stderr,
        flush=True,
    )
    if args.workers > 1 and not args.shared_socket:
        # A socket per worker: uvicorn's shared one let one worker take most connections.
        worker_args = ["--log-level", args.log_level]
        procs = spawn_workers(args.host, args.port, args.workers, worker_args)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the workers too
        try:
            # A worker that dies (kill -9, OOM) is replaced on a socket of its own.
            supervise(procs, lambda: spawn_workers(args.host, args.port, 1, worker_args)[0])
        except KeyboardInterrupt:
            pass
        finally:
            stop_workers(procs)
        return 0
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0


def _cmd_migrate(_args: argparse.Namespace) -> int:
    settings = Settings()
    settings.ensure_dirs()
    upgrade_head(settings.db_url)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker on the job queue, with the reaper loop in this (parent) process."""
    import logging

    from app.webhook_targets import TargetPolicy
    from worker.celery_app import make_celery
    from worker.context import WorkerContext
    from worker.kinds import known_kinds
    from worker.reaper import ReaperThread
    from worker.runner import CeleryRunner
    from worker.webhook_dispatch import WebhookDispatcher

    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    settings.ensure_dirs()
    upgrade_head(settings.db_url)
    known_kinds()  # import every kind (torch) once here, not inside the first job
    reaper_ctx = WorkerContext.from_settings(settings)
    reaper = ReaperThread(reaper_ctx, CeleryRunner(settings).enqueue, settings.reaper_interval_s)
    reaper.start()
    policy = TargetPolicy.from_networks(settings.webhook_allow_networks)
    webhooks = WebhookDispatcher(reaper_ctx.sessionmaker, policy=policy).start()
    argv = [
        "worker",
        "-Q",
        settings.job_queue,
        "-c",
        str(args.concurrency),
        "-P",
        args.pool,
        "--loglevel",
        args.loglevel,
        "--without-gossip",
        "--without-mingle",
    ]
    if args.hostname:
        argv += ["-n", args.hostname]
    try:
        make_celery(settings).worker_main(argv)
    finally:
        webhooks.stop()
        reaper.stop()
        reaper_ctx.dispose()
    return 0


def _cmd_blobs_sweep(args: argparse.Namespace) -> int:
    """Delete blobs no row references (older than --older-than seconds) and stale temp files."""
    from app.blobs import LocalBlobStore
    from app.services.blob_refs import sweep_orphans

    settings = Settings()
    store = LocalBlobStore(settings.blob_dir)
    _, result = cli_keys.in_session(lambda s: sweep_orphans(s, store, older_than_s=args.older_than))
    print(
        f"blobs: {result.examined} older than {args.older_than:g} s examined, "
        f"{len(result.deleted)} unreferenced deleted, {result.tmp_removed} temp files removed "
        f"({cli_keys.where(settings)})",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tag2mask", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (embedded default: SQLite + local blobs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--shared-socket",
        action="store_true",
        help="with --workers > 1: one listening socket for all (uvicorn's own way) instead of "
        "a SO_REUSEPORT socket per worker",
    )
    serve.set_defaults(func=_cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the database schema to the newest version")
    migrate.set_defaults(func=_cmd_migrate)

    worker = sub.add_parser("worker", help="run a Celery job worker (GPU when present)")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    worker.add_argument("--loglevel", default="info")
    worker.add_argument("--hostname", default=None)
    worker.set_defaults(func=_cmd_worker)

    cli_jobs.add_parser(sub)

    blobs = sub.add_parser("blobs", help="the blob store").add_subparsers(
        dest="blobs_cmd", required=True
    )
    sweep = blobs.add_parser(
        "sweep",
        help="delete blobs that no row references (left by a process killed mid-upload); "
        "safe while the service runs",
    )
    sweep.add_argument(
        "--older-than",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="spare blobs younger than this (an upload in flight writes its blob before its "
        "row commits); default 3600",
    )
    sweep.set_defaults(func=_cmd_blobs_sweep)

    cli_keys.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
