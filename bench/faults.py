"""Fault injection: nothing acknowledged is lost while the service's dependencies fail.

Starts, on a fresh PostgreSQL database (dropped at the end) and the local Redis,
`tag2mask serve --workers 2` and two `tag2mask worker` processes (Celery, a queue of their
own), then 8 client threads that upload small synthetic PNGs (every other one with a
class-index mask) and read masks without pause, each upload retried with the same bytes
after a 503, a reset connection or a timeout. Faults, one after another, each after the
service is ready again and a labeling job (`pipeline`, tiny: scratch backbone, 48 px,
2 epochs, 1 round) is at the right point:

- worker_kill: kill -9 the Celery worker running the job mid-stage, start another;
- redis_restart: Redis FLUSHALL and `shutdown nosave`, a job started while it is down,
  then `redis-server` started empty;
- pg_restart_uploads: `pg_ctlcluster ... restart` while the clients upload;
- pg_restart_writeback: the same while a job writes its pseudo-masks back (stage `write`);
- api_kill: kill -9 one API worker process while uploads are in flight.

Then it runs `tag2mask blobs sweep --older-than 0` and counts: uploads acknowledged (2xx)
against image rows and blobs present, duplicate rows and masks, jobs that ended exactly
once, blobs without a row (before and after the sweep), what clients saw around each
fault (503 with Retry-After is the expected answer; a 500 or a hang past the client
timeout is a failure), and the seconds until /readyz answered 200 after each fault.

Restarting PostgreSQL and Redis disturbs everything else on the machine that uses them.

    python bench/faults.py --json bench/out/faults.json
    python bench/faults.py --faults worker_kill api_kill      # no PostgreSQL/Redis restart
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.blobs import LocalBlobStore  # noqa: E402
from app.db import make_sessionmaker, session_scope  # noqa: E402
from app.serve import stop_workers  # noqa: E402
from app.services.keys import create_key  # noqa: E402
from bench.common import (  # noqa: E402
    ADMIN_URL,
    drop_database,
    fresh_database,
    markdown_table,
    write_json,
)
from bench.load import free_port  # noqa: E402

FAULTS = ("worker_kill", "redis_restart", "pg_restart_uploads", "pg_restart_writeback", "api_kill")
JOB_PARAMS = {"backbone": "scratch", "image_size": 48, "epochs": 2, "rounds": 1, "width": 8}
CATEGORIES = ("cat", "dog")
# Crash recovery within the benchmark's patience (the defaults are minutes).
FAST_JOBS = {
    "TAG2MASK_JOB_HEARTBEAT_S": "0.5",
    "TAG2MASK_JOB_STALE_AFTER_S": "10",
    "TAG2MASK_JOB_QUEUED_TIMEOUT_S": "10",
    "TAG2MASK_REAPER_INTERVAL_S": "1",
}
TERMINAL = ("succeeded", "failed", "cancelled")
JOB_FAULTS = ("worker_kill", "redis_restart", "pg_restart_writeback")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- synthetic images ---------------------------------------------------------------


def synthetic_png(seed: int, size: int = 48) -> tuple[bytes, bytes]:
    """(image PNG, class-index mask PNG) of a noisy picture with a cat and a dog square."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    y, x = rng.integers(0, size // 2, 2)
    mask[y : y + size // 3, x : x + size // 3] = 1
    pixels[mask == 1] = (200, 40, 40)
    y, x = rng.integers(size // 2, size - size // 4, 2)
    mask[y : y + size // 4, x : x + size // 4] = 2
    pixels[mask == 2] = (40, 40, 200)
    out = []
    for arr in (pixels, mask):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out[0], out[1]


# --- processes ------------------------------------------------------------------------


def restore_priority() -> list[str]:
    """A `nice` prefix that gives a restarted PostgreSQL or Redis back the priority it had
    (this benchmark may run under `nice -n 19`; as root it can undo that for them)."""
    current = os.nice(0)
    if current > 0 and os.geteuid() == 0:
        return ["nice", "-n", str(-current)]
    return []


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Worker:
    """One `tag2mask worker --pool solo` process; its log goes to a file."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.name = name
        self._log = open(log_dir / f"{name.split('@')[0]}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "app.cli", "worker", "--pool", "solo"),
                *("--hostname", name, "--loglevel", "warning"),
            ],
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()


# --- clients --------------------------------------------------------------------------


@dataclass
class Outcome:
    t0: float
    t1: float
    kind: str  # upload | read
    result: str  # the status code, or timeout / reset / refused
    retry_after: bool = False


@dataclass
class Shared:
    stop: threading.Event = field(default_factory=threading.Event)
    outcomes: list[Outcome] = field(default_factory=list)
    acked: dict[int, tuple[str, bool]] = field(default_factory=dict)  # id -> (sha256, mask)
    mask_ids: list[int] = field(default_factory=list)  # images with a human mask
    unresolved: int = 0  # uploads given up on (the client stopped before a 2xx)
    rejected: Counter[str] = field(default_factory=Counter)  # 4xx answers to uploads


def classify(e: Exception) -> str:
    if isinstance(e, httpx.TimeoutException):
        return "timeout"
    if isinstance(e, httpx.ConnectError):
        return "refused"
    return "reset"  # RemoteProtocolError, ReadError, WriteError: the connection broke


def client_loop(
    idx: int, base: str, key: str, project_id: int, shared: Shared, timeout_s: float
) -> None:
    rng = random.Random(idx)
    headers = {"Authorization": f"Bearer {key}"}
    n = 0
    with httpx.Client(base_url=base, headers=headers, timeout=timeout_s) as c:
        while not shared.stop.is_set():
            n += 1
            with_mask = n % 2 == 0
            png, mask = synthetic_png(1_000_000 * (idx + 1) + n)
            files: dict[str, Any] = {"file": (f"c{idx}-{n}.png", png, "image/png")}
            if with_mask:
                files["mask"] = ("mask.png", mask, "image/png")
            # The same bytes until a 2xx or a 4xx: a retry of an upload that did land is
            # answered 200 with the image it made.
            while True:
                t0 = time.monotonic()
                try:
                    r = c.post(
                        f"/v1/projects/{project_id}/images", files=files, data={"tags": "cat,dog"}
                    )
                    res, ra = str(r.status_code), "retry-after" in r.headers
                except httpx.HTTPError as e:
                    r, res, ra = None, classify(e), False
                shared.outcomes.append(Outcome(t0, time.monotonic(), "upload", res, ra))
                if r is not None and r.status_code < 300:
                    iid = r.json()["id"]
                    shared.acked[iid] = (hashlib.sha256(png).hexdigest(), with_mask)
                    if with_mask:
                        shared.mask_ids.append(iid)
                    break
                if r is not None and r.status_code < 500 and r.status_code != 429:
                    shared.rejected[res] += 1
                    break
                if shared.stop.is_set():
                    shared.unresolved += 1
                    break
                time.sleep(0.5 if r is None else min(float(r.headers.get("retry-after", 1)), 5))
            if shared.mask_ids:
                iid = rng.choice(shared.mask_ids)
                t0 = time.monotonic()
                try:
                    r = c.get(f"/v1/images/{iid}/mask")
                    res, ra = str(r.status_code), "retry-after" in r.headers
                except httpx.HTTPError as e:
                    res, ra = classify(e), False
                shared.outcomes.append(Outcome(t0, time.monotonic(), "read", res, ra))


# --- the bench ------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = fresh_database(args.admin_url, prefix="tag2mask_faults")
        self.data_dir = Path(tempfile.mkdtemp(prefix="tag2mask-faults-"))
        self.log_dir = self.data_dir / "logs"
        self.log_dir.mkdir()
        from sqlalchemy import create_engine

        self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=2)
        with session_scope(make_sessionmaker(self.engine)) as s:
            self.key = create_key(s, "admin", name="faults")[1]
        self.env = {
            **os.environ,
            "TAG2MASK_DATABASE_URL": self.url,
            "TAG2MASK_DATA_DIR": str(self.data_dir),
            "TAG2MASK_JOB_RUNNER": "celery",
            "TAG2MASK_REDIS_URL": args.redis_url,
            "TAG2MASK_JOB_QUEUE": f"faults-{uuid.uuid4().hex[:8]}",
            "PYTHONUNBUFFERED": "1",
            **FAST_JOBS,
        }
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[Worker] = []
        self.n_workers = 0
        self.jobs: list[int] = []
        self.faults: list[dict[str, Any]] = []

    # processes
    def start_api(self) -> None:
        self._api_log = open(self.log_dir / "api.log", "ab")  # noqa: SIM115
        self.api = subprocess.Popen(
            [
                *(sys.executable, "-m", "app.cli", "serve", "--workers", "2"),
                *("--port", str(self.port), "--log-level", "warning"),
            ],
            env=self.env,
            cwd=ROOT,
            stdout=self._api_log,
            stderr=subprocess.STDOUT,
        )

    def start_worker(self) -> Worker:
        self.n_workers += 1
        w = Worker(self.env, self.log_dir, f"w{self.n_workers}@faults")
        self.workers.append(w)
        return w

    def stop_all(self) -> None:
        procs = [w.proc for w in self.workers] + ([self.api] if self.api is not None else [])
        stop_workers(procs)
        self.engine.dispose()

    # probes
    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout_s: float = 120) -> float | None:
        """Monotonic time of the first 200 from /readyz, or None."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready():
                return time.monotonic()
            time.sleep(0.1)
        return None

    def sql(self, statement: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        with self.engine.connect() as c:
            return list(c.execute(text(statement), params))

    def job_state(self, job_id: int) -> Any:
        try:
            rows = self.sql(
                "SELECT status, stage, worker, attempts, handbacks FROM jobs WHERE id = :id",
                id=job_id,
            )
            return rows[0] if rows else None
        except Exception:  # the database is restarting
            return None

    def wait_job(self, job_id: int, until: Any, timeout_s: float, poll_s: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = self.job_state(job_id)
            if st is not None and until(st):
                return st
            time.sleep(poll_s)
        return None

    def start_job(self, project_id: int, timeout_s: float = 30) -> tuple[int | None, str]:
        try:
            r = httpx.post(
                f"{self.base}/v1/projects/{project_id}/jobs",
                json={"kind": "pipeline", "params": JOB_PARAMS},
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=timeout_s,
            )
        except httpx.HTTPError as e:
            return None, classify(e)
        if r.status_code != 202:
            return None, f"{r.status_code} {r.text[:200]}"
        self.jobs.append(r.json()["id"])
        return r.json()["id"], "202"

    # set-up
    def seed(self, job_faults: list[str]) -> tuple[int, dict[str, int]]:
        """Project `uploads` (the clients') and, for each fault that runs a job, a project
        of its own (a fixed set of images, every third with a mask): jobs of one fault may
        still run while the next fault begins."""
        h = {"Authorization": f"Bearer {self.key}"}
        cats = [{"name": n} for n in CATEGORIES]
        projects = {}
        with httpx.Client(base_url=self.base, headers=h, timeout=60) as c:
            up = c.post("/v1/projects", json={"name": "uploads", "categories": cats}).json()["id"]
            for name in job_faults:
                job = c.post("/v1/projects", json={"name": name, "categories": cats}).json()["id"]
                projects[name] = job
                for i in range(self.args.job_images):
                    png, mask = synthetic_png(i)
                    files: dict[str, Any] = {"file": (f"j{i}.png", png, "image/png")}
                    if i % 3 == 0:
                        files["mask"] = ("m.png", mask, "image/png")
                    c.post(
                        f"/v1/projects/{job}/images", files=files, data={"tags": "cat,dog"}
                    ).raise_for_status()
            # Both API processes import the job kinds (torch, seconds) on their first job
            # request: make that happen now (a rejected request on new connections, spread
            # over the processes), so the job requests below time the faults, not imports.
            for _ in range(8):
                r = httpx.post(
                    f"{self.base}/v1/projects/{up}/jobs",
                    json={"kind": "pipeline", "params": {"no_such_param": 1}},
                    headers=h,
                    timeout=120,
                )
                assert r.status_code == 422, r.text
        return up, projects

    # faults
    def inject(self, name: str, job_project: int | None) -> dict[str, Any]:
        rec: dict[str, Any] = {"fault": name}
        job_id = None
        asking: threading.Thread | None = None  # redis_restart: a job asked for meanwhile
        started: list[tuple[int | None, str]] = []
        if name in ("worker_kill", "pg_restart_writeback"):
            job_id, rec["job_start"] = self.start_job(job_project)
            want = (
                (lambda st: st.stage == "write")
                if name == "pg_restart_writeback"
                else (lambda st: st.status == "running" and st.stage not in (None, "load"))
            )
            st = self.wait_job(job_id, lambda st: want(st) or st.status in TERMINAL, 600)
            rec["at_stage"] = None if st is None else st.stage
            if st is None or st.status in TERMINAL:
                rec["note"] = "job ended before the fault"
        t0 = time.monotonic()
        if name == "worker_kill":
            running = None if st is None else st.worker
            victim = next((w for w in self.workers if w.name == running), None)
            if victim is None:
                rec["note"] = f"no running worker named {running!r}"
            else:
                victim.kill()
                self.workers.remove(victim)
                rec["killed"] = victim.name
                time.sleep(1)
                self.start_worker()
            rec["fault_s"] = time.monotonic() - t0
        elif name == "redis_restart":
            where = urlsplit(self.args.redis_url)
            host, port = where.hostname or "127.0.0.1", str(where.port or 6379)
            cli = ["redis-cli", "-h", host, "-p", port]
            subprocess.run([*cli, "flushall"], check=True, capture_output=True)
            subprocess.run([*cli, "shutdown", "nosave"], capture_output=True)
            time.sleep(1)
            rec["readyz_while_down"] = self._readyz_status()
            # A job asked for while the broker is down: committed, its id re-sent later.

            def ask() -> None:
                t = time.monotonic()
                started.append(self.start_job(job_project))
                rec["job_start_s"] = time.monotonic() - t

            asking = threading.Thread(target=ask)
            try:
                asking.start()
                time.sleep(self.args.down_s)
            finally:  # Redis comes back even when the benchmark is stopped meanwhile
                subprocess.run(
                    [
                        *restore_priority(),
                        *("redis-server", "--daemonize", "yes", "--bind", host),
                        *("--port", port, "--save", "", "--appendonly", "no"),
                    ],
                    check=True,
                    capture_output=True,
                )
            rec["fault_s"] = time.monotonic() - t0
        elif name.startswith("pg_restart"):
            if name == "pg_restart_uploads":
                time.sleep(2)  # uploads in full flow
                t0 = time.monotonic()
            if self.args.pg_fault == "restart":
                cluster = sorted(os.listdir("/etc/postgresql"))[0]
                subprocess.run(
                    [
                        *restore_priority(),
                        *("pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"),
                    ],
                    check=True,
                    capture_output=True,
                )
            else:  # only this database's connections dropped, as a restart drops them
                rec["dropped"] = self.drop_connections()
            rec["fault_s"] = time.monotonic() - t0
        elif name == "api_kill":
            time.sleep(2)
            assert self.api is not None
            kids = children(self.api.pid)
            t0 = time.monotonic()
            os.kill(kids[0], signal.SIGKILL)
            rec["killed_pid"] = kids[0]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                now = children(self.api.pid)
                if len(now) == 2 and kids[0] not in now:
                    rec["api_worker_back_s"] = time.monotonic() - t0
                    break
                time.sleep(0.1)
            rec["fault_s"] = time.monotonic() - t0
        green = self.wait_ready()
        if asking is not None:
            asking.join()
            job_id, rec["job_start"] = started[0]
        rec["t0"] = t0
        rec["t_green"] = green
        rec["readyz_green_s"] = None if green is None else green - t0
        if job_id is not None:
            rec["job"] = job_id  # its end is awaited after the last fault
        return rec

    def finish_job(self, rec: dict[str, Any]) -> None:
        st = self.wait_job(rec["job"], lambda st: st.status in TERMINAL, self.args.job_timeout)
        rec["job_status"] = None if st is None else st.status
        rec["job_attempts"] = None if st is None else st.attempts
        rec["job_handbacks"] = None if st is None else st.handbacks
        rec["job_done_s"] = time.monotonic() - rec["t0"]

    def _readyz_status(self) -> str:
        try:
            r = httpx.get(f"{self.base}/readyz", timeout=3)
            return f"{r.status_code} {r.json().get('error', {}).get('detail', '')}"
        except httpx.HTTPError as e:
            return classify(e)

    def drop_connections(self) -> int:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin = create_engine(self.args.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                return int(
                    c.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = :db"
                        ),
                        {"db": make_url(self.url).database},
                    ).scalar()
                    or 0
                )
        finally:
            admin.dispose()

    # the audit
    def audit(self, shared: Shared, uploads_project: int) -> dict[str, Any]:
        store = LocalBlobStore(self.data_dir / "blobs")
        acked = dict(shared.acked)
        rows = {
            r.id: r
            for r in self.sql(
                "SELECT id, sha256, blob_key FROM images WHERE project_id = :p", p=uploads_project
            )
        }
        human = Counter(
            r.image_id for r in self.sql("SELECT image_id FROM masks WHERE source = 'human'")
        )
        human_keys = {
            r.image_id: r.blob_key
            for r in self.sql("SELECT image_id, blob_key FROM masks WHERE source = 'human'")
        }
        present = [i for i, (sha, _) in acked.items() if i in rows and rows[i].sha256 == sha]
        blobs_ok = [i for i in present if store.exists(rows[i].blob_key)]
        with_mask = [i for i, (_, m) in acked.items() if m]
        masks_ok = [i for i in with_mask if i in human_keys and store.exists(human_keys[i])]
        dup_rows = self.sql(
            "SELECT count(*) AS n FROM (SELECT project_id, sha256 FROM images "
            "GROUP BY 1, 2 HAVING count(*) > 1) d"
        )[0].n
        dup_pseudo = self.sql(
            "SELECT count(*) AS n FROM (SELECT job_id, image_id FROM masks WHERE source <> "
            "'human' GROUP BY 1, 2 HAVING count(*) > 1) d"
        )[0].n
        jobs = []
        for jid in self.jobs:
            st = self.job_state(jid)
            ends = self.sql(
                "SELECT count(*) AS n FROM job_events WHERE job_id = :j AND (message IN "
                "('succeeded', 'cancelled', 'too many attempts') OR message LIKE 'failed%%' "
                "OR message LIKE 'The worker stopped answering%%')",
                j=jid,
            )[0].n
            written = self.sql("SELECT count(*) AS n FROM masks WHERE job_id = :j", j=jid)[0].n
            events = self.sql(
                "SELECT ts, level, message FROM job_events WHERE job_id = :j ORDER BY id", j=jid
            )
            jobs.append(
                {
                    "id": jid,
                    "status": st.status,
                    "attempts": st.attempts,
                    "handbacks": st.handbacks,
                    "end_events": ends,
                    "masks_written": written,
                    "events": [
                        [round((e.ts - events[0].ts).total_seconds(), 2), e.level, e.message]
                        for e in events
                    ],
                }
            )

        def orphans() -> int:
            from app.services.blob_refs import referenced

            keys = store.keys()
            used: set[str] = set()
            with session_scope(make_sessionmaker(self.engine)) as s:
                for i in range(0, len(keys), 1000):
                    used |= referenced(s, keys[i : i + 1000])
            return len(set(keys) - used)

        before = orphans()
        tmp_before = len(list((store.root / "tmp").iterdir()))
        sweep = subprocess.run(
            [sys.executable, "-m", "app.cli", "blobs", "sweep", "--older-than", "0"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        after = orphans()
        missing_blobs = sum(1 for r in rows.values() if not store.exists(r.blob_key))
        return {
            "acked": len(acked),
            "rows_present": len(present),
            "blobs_present": len(blobs_ok),
            "lost": len(acked) - len(blobs_ok),
            "acked_with_mask": len(with_mask),
            "masks_present": len(masks_ok),
            "masks_lost": len(with_mask) - len(masks_ok),
            "image_rows": len(rows),
            "rows_without_blob": missing_blobs,
            "duplicate_rows": dup_rows,
            "duplicate_human_masks": sum(1 for n in human.values() if n > 1),
            "duplicate_pseudo_masks": dup_pseudo,
            "jobs": jobs,
            "jobs_ended_once": sum(
                1 for j in jobs if j["status"] in TERMINAL and j["end_events"] == 1
            ),
            "orphan_blobs_before_sweep": before,
            "tmp_files_before_sweep": tmp_before,
            "orphan_blobs_after_sweep": after,
            "sweep_output": (sweep.stderr or sweep.stdout).strip()[-500:],
            "unresolved_uploads": shared.unresolved,
            "rejected_uploads": dict(shared.rejected),
        }


def seen(outcomes: list[Outcome], t0: float, t1: float) -> dict[str, Any]:
    """What clients saw from requests that started in [t0, t1]."""
    window = [o for o in outcomes if t0 <= o.t0 <= t1]
    counts = Counter(o.result for o in window)
    n503 = [o for o in window if o.result == "503"]
    return {
        "requests": len(window),
        "counts": dict(sorted(counts.items())),
        "503_without_retry_after": sum(1 for o in n503 if not o.retry_after),
        "5xx_other": sum(v for k, v in counts.items() if k.startswith("5") and k != "503"),
        "timeouts": counts.get("timeout", 0),
        "max_latency_s": max((o.t1 - o.t0 for o in window), default=0.0),
    }


def fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--faults", nargs="+", default=list(FAULTS), choices=FAULTS)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--client-timeout", type=float, default=15.0, help="seconds per request")
    ap.add_argument("--job-images", type=int, default=12, help="images each job labels")
    ap.add_argument("--down-s", type=float, default=3.0, help="seconds Redis stays down")
    ap.add_argument("--settle-s", type=float, default=5.0, help="calm seconds between faults")
    ap.add_argument("--job-timeout", type=float, default=900.0)
    ap.add_argument(
        "--pg-fault",
        choices=("restart", "terminate"),
        default="restart",
        help="pg_restart_*: restart the server (pg_ctlcluster), or only terminate this "
        "database's connections (gentler: other databases on the server are left alone)",
    )
    ap.add_argument("--admin-url", default=ADMIN_URL)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    # SIGTERM unwinds like Ctrl-C: Redis restarted, processes stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    shared = Shared()
    threads: list[threading.Thread] = []
    t_start = time.monotonic()
    try:
        bench.start_api()
        bench.start_worker()
        bench.start_worker()
        if bench.wait_ready(180) is None:
            raise RuntimeError(f"the API never became ready; see {bench.log_dir}")
        job_faults = [f for f in args.faults if f in JOB_FAULTS]
        uploads, job_projects = bench.seed(job_faults)
        log(f"seeded; logs in {bench.log_dir}")
        threads = [
            threading.Thread(
                target=client_loop,
                args=(i, bench.base, bench.key, uploads, shared, args.client_timeout),
                daemon=True,
            )
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        time.sleep(args.settle_s)
        for name in args.faults:
            log(f"fault {name}")
            rec = bench.inject(name, job_projects.get(name))
            log(f"  {rec}")
            bench.faults.append(rec)
            time.sleep(args.settle_s)
        for rec in bench.faults:
            if "job" in rec:
                log(f"waiting for job {rec['job']} ({rec['fault']})")
                bench.finish_job(rec)
        # the clients' view of each fault: from the fault until it is over (the dependency
        # back, /readyz green), +2 s
        for rec in bench.faults:
            end = rec["t_green"] if rec["t_green"] is not None else time.monotonic()
            end = max(end, rec["t0"] + rec.get("fault_s", 0.0))
            rec["clients"] = seen(shared.outcomes, rec["t0"] - 0.5, end + 2.0)
        shared.stop.set()
        for t in threads:
            t.join(timeout=args.client_timeout * 3)
        audit = bench.audit(shared, uploads)
    finally:
        shared.stop.set()
        bench.stop_all()
        drop_database(bench.url, args.admin_url)
    total = seen(shared.outcomes, 0, float("inf"))
    elapsed = time.monotonic() - t_start

    rows = []
    for rec in bench.faults:
        cl = rec["clients"]
        job = ""
        if "job" in rec:
            job = f"{rec['job_status']} after {rec['job_attempts']} attempts"
            if rec.get("job_handbacks"):
                job += f" ({rec['job_handbacks']} handed back)"
            if rec.get("at_stage"):
                job = f"stage {rec['at_stage']}: " + job
            if "job_start_s" in rec:
                job = f"asked while down: {rec['job_start']} in {rec['job_start_s']:.1f} s; " + job
        rows.append(
            [
                rec["fault"],
                round(rec.get("fault_s", 0.0), 1),
                None if rec["readyz_green_s"] is None else round(rec["readyz_green_s"], 1),
                cl["requests"],
                fmt_counts(cl["counts"]),
                cl["503_without_retry_after"],
                cl["5xx_other"],
                cl["timeouts"],
                round(cl["max_latency_s"], 1),
                job + (f" ({rec['note']})" if rec.get("note") else ""),
            ]
        )
    print(
        f"\n{args.clients} clients uploading 48x48 PNGs (every other with a mask) and reading "
        f"masks, `tag2mask serve --workers 2`, 2 Celery workers, PostgreSQL and Redis on this "
        f"machine; client timeout {args.client_timeout:g} s; {elapsed:.0f} s in all\n"
    )
    print(
        markdown_table(
            [
                "fault",
                "back after s",
                "/readyz green after s",
                "requests meanwhile",
                "what clients saw",
                "503 without Retry-After",
                "other 5xx",
                "hangs (timeouts)",
                "slowest s",
                "job",
            ],
            rows,
        )
    )
    print(
        "\nTimes count from the fault's start; back after: the killed process replaced or the "
        "dependency answering again. What clients saw: requests that started from the fault "
        "until 2 s after /readyz was green, by status; reset: the connection closed "
        "mid-request (a killed API process's own connections); every upload that did not "
        "get a 2xx was sent again with the same bytes."
    )
    jobs = audit["jobs"]
    checks = [
        ["uploads acknowledged (2xx)", audit["acked"], ""],
        ["... image rows present", audit["rows_present"], ""],
        ["... image blobs present", audit["blobs_present"], ""],
        ["... lost", audit["lost"], "0"],
        [
            "acknowledged with a mask / masks present",
            f"{audit['acked_with_mask']} / {audit['masks_present']}",
            "",
        ],
        ["... masks lost", audit["masks_lost"], "0"],
        ["duplicate image rows (same bytes, one project)", audit["duplicate_rows"], "0"],
        ["duplicate human masks", audit["duplicate_human_masks"], "0"],
        ["duplicate pseudo-masks (job, image)", audit["duplicate_pseudo_masks"], "0"],
        ["image rows without their blob", audit["rows_without_blob"], "0"],
        ["jobs ended exactly once", f"{audit['jobs_ended_once']} of {len(jobs)}", "all"],
        ["jobs succeeded", sum(1 for j in jobs if j["status"] == "succeeded"), "all"],
        ["blobs without a row before the sweep", audit["orphan_blobs_before_sweep"], ""],
        ["blobs without a row after the sweep", audit["orphan_blobs_after_sweep"], "0"],
        ["client requests in all", total["requests"], ""],
        ["... 5xx other than 503", total["5xx_other"], "0"],
        ["... 503 without Retry-After", total["503_without_retry_after"], "0"],
        ["... hangs past the client timeout", total["timeouts"], "0"],
    ]
    print()
    print(markdown_table(["check", "count", "must be"], checks))
    ok = (
        audit["lost"] == 0
        and audit["masks_lost"] == 0
        and audit["duplicate_rows"] == 0
        and audit["duplicate_human_masks"] == 0
        and audit["duplicate_pseudo_masks"] == 0
        and audit["rows_without_blob"] == 0
        and audit["jobs_ended_once"] == len(jobs)
        and all(j["status"] == "succeeded" for j in jobs)
        and audit["orphan_blobs_after_sweep"] == 0
        and total["5xx_other"] == 0
        and total["503_without_retry_after"] == 0
        and total["timeouts"] == 0
    )
    print(f"\n{'PASS' if ok else 'FAIL'}")
    write_json(
        args.json,
        {
            "benchmark": "faults",
            "clients": args.clients,
            "client_timeout_s": args.client_timeout,
            "job_params": JOB_PARAMS,
            "job_images": args.job_images,
            "seconds": elapsed,
            "faults": [
                {k: v for k, v in r.items() if k not in ("t0", "t_green")} for r in bench.faults
            ],
            "clients_total": total,
            "audit": audit,
            "pass": ok,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
