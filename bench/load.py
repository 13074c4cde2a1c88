"""API under concurrent load: uvicorn on PostgreSQL, clients from a separate process.

Starts the service (`uvicorn app.main:create_app --factory --workers W --loop uvloop
--http httptools --no-access-log`) on a fresh PostgreSQL database filled with a project
of images and pseudo-masks, then, for each route and each N in --clients, runs
bench/load_client.py (N concurrent keep-alive clients on 127.0.0.1, a separate process)
for --seconds and prints requests/s, p50/p95/p99 and errors, and where the machine's CPU
went: per request in the uvicorn processes, in PostgreSQL and in the client, and the
cores that anything else kept busy meanwhile (another job on the machine skews latency).
--py-spy DIR also records the workers' stacks per cell.

Routes: mask_png, mask_rle, list (four pages in turn, served from the per-process page
cache while the project is unchanged), list_upload (the same pages while one more client
uploads without pause: every upload changes the project, so cached pages go stale and
are rendered anew), upload (a 320 px JPEG with tags, new bytes each time).

    python bench/load.py --workers 2 --clients 1 16 64 --seconds 10 --json bench/out/load.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from app.serve import spawn_workers, stop_workers, uvicorn_command  # noqa: E402
from app.services.keys import create_key  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.common import drop_database, fresh_database, markdown_table, write_json  # noqa: E402

# list_upload: list pages while one more client uploads without pause, so the list page
# cache keeps going stale (its CPU columns include the uploads' share).
ROUTES = ("mask_png", "mask_rle", "list", "list_upload", "upload")
TARGET_P99_MS = {"mask_png": 50, "mask_rle": 50, "list": 50, "list_upload": 50, "upload": 200}


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its children (the uvicorn workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                pids.extend(int(c) for c in children)
        except OSError:
            continue
    return total


def postgres_cpu_s() -> dict[int, float]:
    """CPU seconds of each local PostgreSQL server process (any database), by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() not in ("postgres", "postmaster"):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(proc.name)] = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return out


def postgres_cpu_since(before: dict[int, float]) -> float:
    """CPU seconds PostgreSQL used since `before` (processes that exited meanwhile are lost)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in postgres_cpu_s().items())


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / tick, sum(values) / tick


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(base: str, key: str, settings: Settings, n_images: int) -> tuple[int, list[int]]:
    """A project of 320x240 JPEGs over the API, each with a pseudo-mask from a finished run."""
    from bench.load_client import jpeg_pool
    from models.pipeline import ImageLabel
    from worker.context import WorkerContext
    from worker.writeback import write_pseudo_masks

    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=h, timeout=60) as c:
        pid = c.post(
            "/v1/projects",
            json={
                "name": "load",
                "categories": [{"name": n} for n in ("cat", "dog", "bird", "car")],
            },
        ).json()["id"]
        ids = []
        for i, data in enumerate(jpeg_pool(n_images, seed=12345)):
            r = c.post(
                f"/v1/projects/{pid}/images",
                files={"file": (f"s{i}.jpg", data)},
                data={"tags": "cat,dog"},
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
    rng = np.random.default_rng(0)
    labels = []
    for i in range(len(ids)):
        mask = np.zeros((240, 320), np.uint8)
        y, x = rng.integers(20, 180), rng.integers(20, 260)
        mask[y : y + 50, x : x + 50] = 1
        mask[:40, :] = 2
        labels.append(
            ImageLabel(
                index=i,
                mask=mask,
                confidence=np.full_like(mask, 200),
                regions=[{"id": 0, "bbox": [0, 0, 320, 240], "score": 0.8}],
            )
        )
    ctx = WorkerContext.from_settings(settings)
    with ctx.sessionmaker.begin() as s:
        from app.tables import Job, utcnow

        job = Job(
            project_id=pid,
            kind="pipeline",
            status="succeeded",
            params={},
            metrics={},
            attempts=1,
            started_at=utcnow(),
            finished_at=utcnow(),
        )
        s.add(job)
        s.flush()
        job_id = job.id
    write_pseudo_masks(ctx, pid, job_id, labels, ids, None)
    ctx.dispose()
    return pid, ids


def page_queries(base: str, key: str, project_id: int) -> list[str]:
    """What the list clients ask for, in turn: the first two pages (the second by its
    cursor), a tag filter and a mask filter, 50 images each."""
    first = httpx.get(
        f"{base}/v1/projects/{project_id}/images?limit=50",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ).json()
    queries = ["limit=50", "limit=50&tag=dog", "limit=50&has_pseudo_mask=true"]
    if first["next_cursor"]:
        queries.insert(1, f"limit=50&cursor={first['next_cursor']}")
    return queries


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--routes", nargs="+", default=list(ROUTES), choices=ROUTES)
    ap.add_argument("--images", type=int, default=200, help="images in the seeded project")
    ap.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--list-cache-mb",
        type=int,
        default=None,
        help="TAG2MASK_LIST_CACHE_MB for the servers (0: every list page is rendered anew)",
    )
    ap.add_argument(
        "--shared-socket",
        action="store_true",
        help="plain `uvicorn --workers W` (one socket for all workers) instead of app.serve's "
        "SO_REUSEPORT socket per worker",
    )
    ap.add_argument(
        "--py-spy",
        default=None,
        metavar="DIR",
        help="profile the uvicorn workers with py-spy during each cell (collapsed stacks in DIR)",
    )
    args = ap.parse_args()

    url = fresh_database(args.admin_url, prefix="tag2mask_load")
    data_dir = Path(tempfile.mkdtemp(prefix="tag2mask-load-"))
    settings = Settings(database_url=url, data_dir=data_dir, job_runner="celery")
    settings.ensure_dirs()
    engine = make_engine(url, pool_size=1)
    with session_scope(make_sessionmaker(engine)) as s:
        key = create_key(s, "admin", name="load")[1]
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "TAG2MASK_DATABASE_URL": url,
        "TAG2MASK_DATA_DIR": str(data_dir),
        "TAG2MASK_JOB_RUNNER": "celery",
    }
    if args.list_cache_mb is not None:
        env["TAG2MASK_LIST_CACHE_MB"] = str(args.list_cache_mb)
    uvicorn_args = [
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if args.shared_socket:
        servers = [
            subprocess.Popen(
                uvicorn_command(
                    *("--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)),
                    *uvicorn_args,
                ),
                cwd=ROOT,
                env=env,
            )
        ]
    else:
        servers = spawn_workers("127.0.0.1", port, args.workers, uvicorn_args, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    rows, results = [], []
    list_queries: list[str] = []
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        pid, ids = seed(base, key, settings, args.images)
        list_queries = page_queries(base, key, pid)
        for route in args.routes:
            for n in args.clients:
                spec = {
                    "route": route,
                    "clients": n,
                    "seconds": args.seconds,
                    "image_ids": ids,
                    "project_id": pid,
                    "list_queries": list_queries,
                    "seed": n,
                }
                spies = []
                if args.py_spy:
                    Path(args.py_spy).mkdir(parents=True, exist_ok=True)
                    for k, p in enumerate(servers):
                        out_path = Path(args.py_spy) / f"{route}-{n}-{k}.txt"
                        spies.append(
                            subprocess.Popen(
                                [
                                    *("py-spy", "record", "--pid", str(p.pid), "--subprocesses"),
                                    *("--format", "raw", "--rate", "200"),
                                    *("--duration", str(int(args.seconds))),
                                    *("--output", str(out_path)),
                                ],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                            )
                        )
                cpu0, pg0 = sum(tree_cpu_s(p.pid) for p in servers), postgres_cpu_s()
                busy0, all0 = machine_busy_s()
                out = subprocess.run(
                    [
                        sys.executable,
                        str(ROOT / "bench" / "load_client.py"),
                        base,
                        key,
                        json.dumps(spec),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                res = json.loads(out.stdout.strip().splitlines()[-1])
                busy1, all1 = machine_busy_s()
                for spy in spies:
                    spy.wait()
                res["server_cpu_ms_per_request"] = (
                    1000
                    * (sum(tree_cpu_s(p.pid) for p in servers) - cpu0)
                    / max(res["requests"], 1)
                )
                res["postgres_cpu_ms_per_request"] = (
                    1000 * postgres_cpu_since(pg0) / max(res["requests"], 1)
                )
                res["machine_busy"] = (busy1 - busy0) / max(all1 - all0, 1e-9)
                # Busy CPU beyond server, PostgreSQL and client: other jobs on the machine,
                # the kernel, the client's start-up (approximate: /proc/stat covers more).
                ours = (
                    res["requests"]
                    / 1000
                    * sum(
                        res[k]
                        for k in (
                            "server_cpu_ms_per_request",
                            "postgres_cpu_ms_per_request",
                            "client_cpu_ms_per_request",
                        )
                    )
                )
                res["other_cpu_cores"] = max(0.0, (busy1 - busy0 - ours) / res["seconds"])
                results.append(res)
                target = TARGET_P99_MS[route] if n == 64 else None
                rows.append(
                    [
                        route,
                        n,
                        round(res["rps"], 1),
                        round(res["p50_ms"], 1),
                        round(res["p95_ms"], 1),
                        round(res["p99_ms"], 1),
                        res["errors"],
                        round(res["server_cpu_ms_per_request"], 2),
                        round(res["postgres_cpu_ms_per_request"], 2),
                        round(res["client_cpu_ms_per_request"], 2),
                        round(res["other_cpu_cores"], 2),
                        round(res["background_uploads_per_s"], 1) if route == "list_upload" else "",
                        "" if target is None else ("yes" if res["p99_ms"] < target else "NO"),
                    ]
                )
                print(
                    f"{route:11s} N={n:3d} {res['rps']:8.1f} req/s p99 {res['p99_ms']:.1f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        stop_workers(servers)
        drop_database(url, args.admin_url)
    print(
        f"\n{args.workers} uvicorn workers ("
        f"{'one shared socket' if args.shared_socket else 'a SO_REUSEPORT socket each'}, "
        "--loop uvloop --http httptools) on PostgreSQL, "
        f"{args.seconds:.0f} s per cell, "
        f"{args.images} images of 320x240 with pseudo-masks; list pages: "
        f"{', '.join(list_queries)} in turn; list page cache: "
        f"{'default' if args.list_cache_mb is None else f'{args.list_cache_mb} MiB'}\n"
    )
    print(
        markdown_table(
            [
                "route",
                "clients",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "errors",
                "server CPU ms/req",
                "PostgreSQL CPU ms/req",
                "client CPU ms/req",
                "other busy cores",
                "uploads/s meanwhile",
                "p99 target met (N=64)",
            ],
            rows,
        )
    )
    write_json(
        args.json,
        {
            "benchmark": "load",
            "workers": args.workers,
            "uvicorn": "--loop uvloop --http httptools --no-access-log",
            "sockets": "shared" if args.shared_socket else "SO_REUSEPORT per worker",
            "client": "bench/load_client.py: raw asyncio keep-alive HTTP/1.1, one process",
            "seconds": args.seconds,
            "list_queries": list_queries,
            "list_cache_mb": args.list_cache_mb,
            "targets_p99_ms_at_64": TARGET_P99_MS,
            "results": results,
        },
    )
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
