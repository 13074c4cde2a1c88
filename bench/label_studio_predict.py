"""Label Studio ML backend /predict latency on CPU, one 320 px image per request.

Through the whole route (auth, project read, fetching the task image from a Label
Studio-like host with its token, decode, networks, brush RLE), on an in-process app over
SQLite. Cases: an image tag2mask already has (its stored mask, matched by our signed URL
or by the fetched bytes' sha256), and a new image labelled by the latest run's networks
(S_a + S_b flip-averaged and the discriminator) at the run's resolution: the default
config (EfficientNet-Lite0, 128 px) and one trained at 320 px. The weights are untrained:
the work per image does not depend on what they learned. Label Studio waits 100 s
(ML_TIMEOUT_PREDICT) for /predict.

    python bench/label_studio_predict.py --requests 30 --json bench/out/ls_predict.json
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade_head  # noqa: E402
from app.services.keys import create_key  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.common import machine, markdown_table, write_json  # noqa: E402
from tests.fixtures.build import image_bytes, mask_bytes  # noqa: E402
from tests.fixtures.label_studio import FileHost, saved_run  # noqa: E402

CATEGORIES = ["cat", "dog", "bird", "person"]


def _percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.array(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "max_ms": round(float(arr.max()), 1),
    }


def _time(client: TestClient, url: str, body: dict[str, Any], headers: dict, n: int) -> dict:
    first = time.perf_counter()
    r = client.post(url, json=body, headers=headers)
    cold = time.perf_counter() - first
    assert r.status_code == 200, r.text
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.post(url, json=body, headers=headers)
        samples.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
    pred = r.json()["results"][0]
    return {
        "cold_ms": round(cold * 1000, 1),
        **_percentiles(samples),
        "model_version": pred["model_version"],
        "regions": len(pred["result"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--size", type=int, default=320, help="image side in px")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade_head(url)
        settings = Settings(database_url=url, data_dir=Path(tmp) / "data", job_runner="thread")
        engine = make_engine(url, pool_size=1)
        with session_scope(make_sessionmaker(engine)) as s:
            key = create_key(s, "admin", None)[1]
        engine.dispose()
        auth = {"Authorization": "Basic " + base64.b64encode(f"t2m:{key}".encode()).decode()}
        host = FileHost("bench-token")
        side = args.size
        known = image_bytes(side, side, seed=1)
        host.files["/data/upload/1/new.png"] = image_bytes(side, side, seed=2)
        with TestClient(create_app(settings)) as client:
            bearer = {"Authorization": f"Bearer {key}"}
            for name, params in (("lite0-128 (default)", {}), ("lite0-320", {"image_size": 320})):
                r = client.post(
                    "/v1/projects",
                    json={"name": name, "categories": [{"name": c} for c in CATEGORIES]},
                    headers=bearer,
                )
                pid = r.json()["id"]
                mask = np.zeros((side, side), np.uint8)
                mask[side // 4 : side // 2, side // 4 : side // 2] = 1
                im = client.post(
                    f"/v1/projects/{pid}/images",
                    files={"file": ("k.png", known), "mask": ("m.png", mask_bytes(mask))},
                    data={"tags": "cat"},
                    headers=bearer,
                ).json()
                saved_run(client.app.state.settings, pid, len(CATEGORIES), params)
                setup = {"hostname": host.url, "access_token": host.token}
                client.post(f"/label-studio/{pid}/setup", json=setup, headers=auth)
                signer = client.app.state.signer
                cases = {
                    "known image, our signed URL": signer.image_file(im["id"], exp=signer.expiry()),
                    "new image, fetched from Label Studio": "/data/upload/1/new.png",
                }
                for case, image_url in cases.items():
                    if case.startswith("known") and results:
                        continue  # the stored-mask path does not depend on the run
                    body = {"tasks": [{"id": 1, "data": {"image": image_url}}]}
                    out = _time(client, f"/label-studio/{pid}/predict", body, auth, args.requests)
                    label = case if case.startswith("known") else f"{case}, {name}"
                    results.append({"case": label, **out})
                    rows.append(
                        [label, out["cold_ms"], out["p50_ms"], out["p99_ms"], out["max_ms"]]
                    )
        host.close()
    print(
        f"/predict, one {args.size}x{args.size} px image per request, {args.requests} requests "
        f"after the first; torch threads: {torch.get_num_threads()}"
    )
    print(markdown_table(["case", "first (ms)", "p50 (ms)", "p99 (ms)", "max (ms)"], rows))
    write_json(args.json, {"machine": machine(), "size": args.size, "results": results})


if __name__ == "__main__":
    main()
