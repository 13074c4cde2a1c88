"""The load generator of bench/load.py, run as its own process: N concurrent clients.

python bench/load_client.py URL KEY SPEC_JSON  → prints one JSON result on stdout
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from typing import Any

import httpx
import numpy as np
from PIL import Image


def jpeg_pool(n: int, size: int = 320, seed: int = 0) -> list[bytes]:
    """Distinct 320 px JPEGs, so every upload is a new image (no dedup shortcut)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        # The comment makes the bytes unique even where JPEG quantisation would not.
        Image.fromarray(base).save(
            buf, format="JPEG", quality=85, comment=f"load-{seed}-{i}".encode()
        )
        out.append(buf.getvalue())
    return out


async def run(url: str, key: str, spec: dict[str, Any]) -> dict[str, Any]:
    route, clients, seconds = spec["route"], spec["clients"], spec["seconds"]
    image_ids: list[int] = spec["image_ids"]
    pid = spec["project_id"]
    uploads = (
        jpeg_pool(spec.get("upload_pool", 4000), seed=spec.get("seed", 0))
        if route == "upload"
        else []
    )
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = {"i": 0}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30
    ) as client:

        async def one() -> httpx.Response:
            i = counter["i"]
            counter["i"] += 1
            iid = image_ids[i % len(image_ids)]
            if route == "mask_png":
                return await client.get(f"/v1/images/{iid}/mask")
            if route == "mask_rle":
                return await client.get(f"/v1/images/{iid}/mask", params={"format": "rle"})
            if route == "list":
                return await client.get(f"/v1/projects/{pid}/images", params={"limit": 50})
            if route == "upload":
                data = uploads[i % len(uploads)]
                return await client.post(
                    f"/v1/projects/{pid}/images",
                    files={"file": (f"u{i}.jpg", data, "image/jpeg")},
                    data={"tags": "cat,dog"},
                )
            raise ValueError(route)

        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    r = await one()
                    ok = r.status_code < 300
                    code = str(r.status_code)
                except httpx.HTTPError as e:
                    ok, code = False, type(e).__name__
                latencies.append(time.perf_counter() - t0)
                if not ok:
                    errors[code] = errors.get(code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {
        "route": route,
        "clients": clients,
        "seconds": elapsed,
        "requests": len(lat),
        "rps": len(lat) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "errors": sum(errors.values()),
        "error_codes": errors,
    }


if __name__ == "__main__":
    result = asyncio.run(run(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
    print(json.dumps(result))
