"""Screenshots for the README: a Label Studio task showing tag2mask's prediction.

Everything local and in temp dirs: tag2mask (uvicorn, SQLite) gets synthetic shape images
(half with human masks) and runs a small real labeling run on CPU; its Label Studio
export is imported into a fresh Label Studio 1.23.2 (tests/fixtures/label_studio_server.py)
whose project uses our labeling config, with tag2mask connected as its model; headless
Chromium (scripts/browser_snapshot.py, in the Label Studio virtualenv with selenium)
opens a task whose pseudo-mask is the prediction, and one uploaded to Label Studio that
tag2mask's networks predicted.

    python scripts/label_studio_screenshots.py --out docs

Needs chromium and chromedriver (apt) and `.venv-labelstudio/bin/pip install selenium`.
The PNGs in docs/ were then reduced to 256 colours.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade_head  # noqa: E402
from app.services.keys import create_key  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.fixtures import label_studio_server as lss  # noqa: E402
from tests.fixtures.server import ServerThread, bound_socket  # noqa: E402
from tests.synthetic import encode_png, make_shapes_dataset  # noqa: E402

CATEGORIES = ["circle", "square", "triangle", "cross"]
RUN = {
    "backbone": "scratch",
    "image_size": 96,
    "epochs": 25,
    "rounds": 1,
    "batch_size": 8,
    "width": 16,
    "min_masks_per_class": 2,
}


def _poll(t2m: httpx.Client, job_id: int, timeout_s: float = 1800) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = t2m.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(1)
    raise TimeoutError(f"job {job_id}")


def _seed(t2m: httpx.Client, n: int, size: int) -> tuple[int, bytes]:
    pid = t2m.post(
        "/v1/projects", json={"name": "shapes", "categories": [{"name": c} for c in CATEGORIES]}
    ).json()["id"]
    images, masks, tags = make_shapes_dataset(n + 1, size=size, seed=7, num_classes=4)
    for i in range(n):
        files = {"file": (f"shape-{i:03d}.png", encode_png(images[i]))}
        if i % 2 == 0:
            files["mask"] = ("m.png", encode_png(masks[i]))
        names = ",".join(CATEGORIES[k - 1] for k in sorted(tags[i]))
        r = t2m.post(f"/v1/projects/{pid}/images", files=files, data={"tags": names})
        r.raise_for_status()
    started = time.monotonic()
    job = _poll(
        t2m,
        t2m.post(f"/v1/projects/{pid}/jobs", json={"kind": "pipeline", "params": RUN}).json()["id"],
    )
    print(f"labeling run {job['id']}: {job['status']} in {time.monotonic() - started:.0f} s")
    assert job["status"] == "succeeded", job
    return pid, encode_png(images[n])  # one image tag2mask never saw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--size", type=int, default=160)
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        db = f"sqlite:///{tmp_path / 't2m.db'}"
        upgrade_head(db)
        sock = bound_socket()
        public = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = Settings(database_url=db, data_dir=tmp_path / "data", public_url=public)
        engine = make_engine(db, pool_size=1)
        with session_scope(make_sessionmaker(engine)) as s:
            key = create_key(s, "admin", None)[1]
        engine.dispose()
        (tmp_path / "ls").mkdir()
        ls_sock = bound_socket()
        ls_port = ls_sock.getsockname()[1]
        ls_sock.close()
        ls_url = f"http://127.0.0.1:{ls_port}"
        proc = lss.start_label_studio(tmp_path / "ls", ls_port)
        try:
            with (
                ServerThread(create_app(settings), sock),
                httpx.Client(
                    base_url=public, headers={"Authorization": f"Bearer {key}"}, timeout=120
                ) as t2m,
            ):
                pid, unseen = _seed(t2m, args.images, args.size)
                export = _poll(
                    t2m,
                    t2m.post(
                        f"/v1/projects/{pid}/jobs",
                        json={
                            "kind": "export",
                            "params": {"format": "label-studio", "include": "best"},
                        },
                    ).json()["id"],
                )
                tasks = json.loads(t2m.get(f"/v1/jobs/{export['id']}/result").content)
                config = t2m.get(f"/v1/projects/{pid}/label-studio/config").text
                lss.wait_ready(ls_url, proc, tmp_path / "ls" / "server.log")
                ls = lss.LabelStudio(ls_url, lss.TOKEN).client()
                lsp = ls.post(
                    "/api/projects", json={"title": "tag2mask shapes", "label_config": config}
                ).json()["id"]
                ls.post(f"/api/projects/{lsp}/import", json=tasks).raise_for_status()
                backend = public.replace("http://", f"http://tag2mask:{key}@")
                ml = ls.post(
                    "/api/ml",
                    json={
                        "project": lsp,
                        "title": "tag2mask",
                        "url": f"{backend}/label-studio/{pid}",
                    },
                ).json()
                print("ml backend:", ml.get("state"), ml.get("model_version"))
                ls.patch(
                    f"/api/projects/{lsp}",
                    json={"model_version": ml["model_version"], "show_collab_predictions": True},
                )
                ls.post(f"/api/projects/{lsp}/import", files={"file": ("unseen.png", unseen)})
                all_tasks = ls.get("/api/tasks", params={"project": lsp, "fields": "all"}).json()
                uploaded = next(
                    t for t in all_tasks["tasks"] if t["data"]["image"].startswith("/data/upload/")
                )
                ls.post(
                    "/api/dm/actions",
                    params={"id": "retrieve_tasks_predictions", "project": lsp},
                    json={"selectedItems": {"all": False, "included": [uploaded["id"]]}},
                )
                shown = next(
                    t for t in all_tasks["tasks"] if t.get("meta", {}).get("source") == "pseudo"
                )
                subprocess.run(
                    [
                        str(lss.VENV / "bin" / "python"),
                        str(ROOT / "scripts/browser_snapshot.py"),
                        ls_url,
                        lss.USER,
                        lss.PASSWORD,
                        f"/projects/{lsp}/data?task={shown['id']}={out / 'label-studio-task.png'}",
                        f"/projects/{lsp}/data?task={uploaded['id']}="
                        f"{out / 'label-studio-ml-backend.png'}",
                    ],
                    check=True,
                )
        finally:
            lss.stop(proc)


if __name__ == "__main__":
    main()
