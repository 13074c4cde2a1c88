"""A project of one million images: list pages and the review queue at the database.

Fills a fresh PostgreSQL database (rows only, a few real blobs shared) through the tables
the service uses, then times the service's own query functions and shows each statement's
plan (EXPLAIN ANALYZE), failing loudly when a big table is scanned sequentially.

    python bench/scale.py --images 1000000 --json bench/out/scale.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import event, insert, text
from sqlalchemy.orm import Session
from tqdm import tqdm

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from app.db import make_engine, make_sessionmaker
from app.services.image_list import (
    ImageFilter,
    encode_cursor,
    list_images,
    page_json_stmt,
    page_params,
)
from app.services.projects import get_project_or_raise
from app.services.review import review_queue
from app.services.scope import SYSTEM
from app.tables import Category, Image, Mask, Project, image_tags, utcnow
from bench.common import ADMIN_URL, drop_database, fresh_database, markdown_table, write_json

N_CATEGORIES = 20
BIG_TABLES = ("images", "image_tags", "masks")


def fill(url: str, n_images: int, seed: int, batch: int = 20_000) -> int:
    """Insert the project, categories, images, tags and masks; returns the project id."""
    rng = np.random.default_rng(seed)
    engine = make_engine(url, pool_size=1)
    blob_keys = [hashlib.sha256(f"shared-{i}".encode()).hexdigest() for i in range(4)]
    # Category frequencies from common (40 %) to rare (0.5 %).
    freq = np.geomspace(0.4, 0.005, N_CATEGORIES)
    with Session(engine, expire_on_commit=False) as s:
        project = Project(name="one-million", settings={})
        project.categories = [
            Category(name=f"cat{i}", class_index=i, color="#000000")
            for i in range(1, N_CATEGORIES + 1)
        ]
        s.add(project)
        s.commit()
        pid = project.id
        cat_ids = [c.id for c in project.categories]
    now = utcnow()
    with engine.begin() as conn, tqdm(total=n_images, desc="fill", file=sys.stderr) as bar:
        for start in range(0, n_images, batch):
            ids = np.arange(start + 1, min(start + batch, n_images) + 1)
            conn.execute(
                insert(Image),
                [
                    {
                        "id": int(i),
                        "project_id": pid,
                        "sha256": f"{int(i):064x}",
                        "width": 320,
                        "height": 240,
                        "blob_key": blob_keys[int(i) % 4],
                        "filename": f"img{int(i)}.jpg",
                        "content_type": "image/jpeg",
                        "size_bytes": 20_000,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
            has = rng.random((len(ids), N_CATEGORIES)) < freq
            has[~has.any(1), 0] = True
            rows_i, rows_c = np.nonzero(has)
            conn.execute(
                insert(image_tags),
                [
                    {"image_id": int(ids[r]), "category_id": cat_ids[c]}
                    for r, c in zip(rows_i, rows_c, strict=True)
                ],
            )
            masks: list[dict[str, Any]] = []
            kind = rng.random(len(ids))
            state = rng.random(len(ids))
            conf = rng.random(len(ids))
            for j, i in enumerate(ids):
                if kind[j] < 0.02:
                    masks.append(
                        {
                            "image_id": int(i),
                            "project_id": pid,
                            "source": "human",
                            "blob_key": blob_keys[0],
                            "confidence_key": None,
                            "review_state": "accepted",
                            "mean_confidence": None,
                            "stats": {},
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                elif kind[j] < 0.32:
                    rs = (
                        "pending"
                        if state[j] < 0.8
                        else "accepted"
                        if state[j] < 0.95
                        else "rejected"
                    )
                    masks.append(
                        {
                            "image_id": int(i),
                            "project_id": pid,
                            "source": "pseudo",
                            "blob_key": blob_keys[1],
                            "confidence_key": blob_keys[2],
                            "review_state": rs,
                            "mean_confidence": float(conf[j]),
                            "stats": {},
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            if masks:
                conn.execute(insert(Mask), masks)
            bar.update(len(ids))
        conn.execute(text("SELECT setval('images_id_seq', (SELECT max(id) FROM images))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return pid


class PlanCapture:
    """Collect every SELECT a block of service code runs, to EXPLAIN it afterwards."""

    def __init__(self, engine: Any) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.engine = engine

    def __enter__(self) -> PlanCapture:
        event.listen(self.engine, "before_cursor_execute", self._grab)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._grab)

    def _grab(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.statements.append((statement, parameters))


def explain(engine: Any, statements: list[tuple[str, Any]]) -> tuple[float, list[str], bool]:
    """Total execution ms, the plans, and whether a big table was sequentially scanned."""
    total, plans, seq = 0.0, [], False
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        for sql, params in statements:
            with raw.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                lines = [r[0] for r in cur.fetchall()]
            plans.append("\n".join(lines))
            for line in lines:
                if "Execution Time" in line:
                    total += float(line.split(":")[1].split()[0])
                if "Seq Scan on" in line and any(
                    f"Seq Scan on {t} " in line + " " for t in BIG_TABLES
                ):
                    seq = True
    return total, plans, seq


def timed(fn: Callable[[], Any], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def report(url: str, args: argparse.Namespace, fill_s: float) -> int:
    """Time and explain every case on the filled database; 1 when a case breaks a target."""
    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    with factory() as s:
        pid = s.scalar(text("SELECT id FROM projects ORDER BY id LIMIT 1"))
        project = get_project_or_raise(s, pid, SYSTEM)
        middle = args.images // 2
        mid_cursor = encode_cursor(middle)
        _, q_cursor = review_queue(s, project, limit=5000, cursor=None)

    def api_page(flt: ImageFilter, cursor: str | None) -> Callable[[Session], Any]:
        """The statement GET /v1/projects/{pid}/images runs on PostgreSQL (the page rendered
        as JSON in the database): its items."""
        params = page_params(pid, flt, limit=args.limit, cursor=cursor)
        stmt = page_json_stmt(flt.shape())
        return lambda s: (json.loads(s.execute(stmt, params).one().page_json), None)

    cases: dict[str, Callable[[Session], Any]] = {
        "list: first page": api_page(ImageFilter(), None),
        "list: middle page (cursor)": api_page(ImageFilter(), mid_cursor),
        "list: tag common (40 %)": api_page(ImageFilter(tag="cat1"), None),
        "list: tag rare (0.5 %)": api_page(ImageFilter(tag=f"cat{N_CATEGORIES}"), mid_cursor),
        "list: has_human_mask": api_page(ImageFilter(has_human_mask=True), mid_cursor),
        "list: review_state=rejected": api_page(ImageFilter(review_state="rejected"), mid_cursor),
        "list: ORM page (SQLite's path)": lambda s: list_images(
            s, project, ImageFilter(), limit=args.limit, cursor=mid_cursor
        ),
        "review queue: first page": lambda s: review_queue(s, project, limit=50, cursor=None),
        "review queue: deep page": lambda s: review_queue(s, project, limit=50, cursor=q_cursor),
    }
    rows, out = [], []
    for name, fn in cases.items():
        with factory() as s:
            wall = timed(lambda fn=fn, s=s: fn(s))
            with PlanCapture(engine) as cap:
                result = fn(s)
        db_ms, plans, seq = explain(engine, cap.statements)
        n = len(result[0])
        rows.append(
            [name, n, round(wall, 2), round(db_ms, 2), len(cap.statements), "yes" if seq else "no"]
        )
        out.append(
            {
                "case": name,
                "rows": n,
                "wall_ms": wall,
                "db_ms": db_ms,
                "statements": len(cap.statements),
                "seq_scan_on_big_table": seq,
                "plans": plans,
            }
        )
        if args.plans:
            print(f"\n### {name}\n" + "\n\n".join(plans), file=sys.stderr)
    engine.dispose()
    print(f"\n{args.images:,} images (fill {fill_s:.0f} s), page size {args.limit}\n")
    print(
        markdown_table(
            [
                "query",
                "rows",
                "wall ms (median of 7)",
                "DB ms (EXPLAIN ANALYZE)",
                "statements",
                "seq scan on a big table",
            ],
            rows,
        )
    )
    write_json(
        args.json,
        {
            "benchmark": "scale",
            "images": args.images,
            "database": url.split("@")[-1],
            "results": out,
        },
    )
    return 1 if any(r["seq_scan_on_big_table"] or r["db_ms"] >= 20 for r in out) else 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL to create the database in")
    ap.add_argument("--url", default=None, help="reuse an already filled database")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=100, help="page size")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plans", action="store_true", help="print every EXPLAIN plan")
    ap.add_argument(
        "--keep", action="store_true", help="keep the filled database (reuse it with --url)"
    )
    args = ap.parse_args()

    url, created = args.url, args.url is None
    t0 = time.perf_counter()
    if created:
        url = fresh_database(args.admin_url, prefix="tag2mask_scale")
    try:
        if created:
            fill(url, args.images, args.seed)
        return report(url, args, time.perf_counter() - t0)
    finally:
        if created and args.keep:
            print(f"kept: --url {url}", file=sys.stderr)
        elif created:  # also when the fill or a query failed
            drop_database(url, args.admin_url)


if __name__ == "__main__":
    sys.exit(main())
