"""Helpers of the browser tests: data through the API, and driving the page."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.fixtures.pseudo import finished_pipeline_job
from tests.review.conftest import Server
from tests.synthetic import SHAPES, encode_png, make_shapes_dataset

SIZE = 96


def read_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def confidence_map(mask: np.ndarray, mean: float, weak: list[int]) -> np.ndarray:
    """A uniform `mean` confidence, lower inside the `weak` box (so the heat map shows it)."""
    conf = np.full(mask.shape, round(mean * 255), dtype=np.uint8)
    x0, y0, x1, y1 = weak
    conf[y0:y1, x0:x1] = round(mean * 255 * 0.3)
    return conf


def review_project(
    server: Server,
    confidences: tuple[float, ...] = (0.9, 0.3, 0.6, 0.1),
    categories: tuple[str, ...] = SHAPES[:3],
    filenames: list[str] | None = None,
    seed: int = 0,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A project of shape images with one finished run: one pseudo-mask per image.

    `metrics["budget"]` entries name images by upload position (0, 1, ...) in `image_id`;
    they are given the real ids before the run is written.
    """
    images, masks, tags = make_shapes_dataset(
        len(confidences), size=SIZE, seed=seed, num_classes=len(categories)
    )
    with server.client() as api:
        r = api.post(
            "/v1/projects",
            json={"name": f"shapes {seed}", "categories": [{"name": c} for c in categories]},
        )
        assert r.status_code == 201, r.text
        project = r.json()
        ids = []
        for i, (im, t) in enumerate(zip(images, tags, strict=True)):
            name = filenames[i] if filenames else f"shape_{seed}_{i}.png"
            form = {"tags": json.dumps([categories[k - 1] for k in sorted(t)])}
            up = api.post(
                f"/v1/projects/{project['id']}/images",
                files={"file": (name, encode_png(im), "image/png")},
                data=form,
            )
            assert up.status_code == 201, up.text
            ids.append(up.json()["id"])
    pseudo = [m.astype(np.uint8) for m in masks]
    weak = [[8, 8, 40, 40] for _ in pseudo]
    regions = [
        [
            {"id": 0, "bbox": w, "score": round(c * 0.3, 3)},
            {"id": 1, "bbox": [48, 48, 90, 90], "score": round(c, 3)},
        ]
        for w, c in zip(weak, confidences, strict=True)
    ]
    if metrics and "budget" in metrics:
        ranking = [{**r, "image_id": ids[r["image_id"]]} for r in metrics["budget"]]
        metrics = {**metrics, "budget": ranking}
    job = finished_pipeline_job(
        server.settings,
        project["id"],
        ids,
        pseudo,
        [confidence_map(m, c, w) for m, c, w in zip(pseudo, confidences, weak, strict=True)],
        metrics=metrics,
        regions=regions,
    )
    return {"project": project, "image_ids": ids, "masks": pseudo, "job_id": job}


def queue_items(server: Server, pid: int) -> list[dict[str, Any]]:
    with server.client() as api:
        r = api.get(f"/v1/projects/{pid}/review-queue")
        assert r.status_code == 200, r.text
        return list(r.json()["items"])


def wait(driver: WebDriver, cond: Callable[[WebDriver], Any], timeout: float = 10) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(cond)


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def open_page(driver: WebDriver, server: Server, path: str, key: str | None = None) -> None:
    """Open `path` signed out, then sign in through the form with `key` (admin's if None)."""
    driver.get(server.url + "/review")
    driver.execute_script("sessionStorage.clear()")
    driver.get(server.url + path)
    box = wait(driver, lambda d: d.find_element(By.ID, "key"))
    wait(driver, lambda d: box.is_displayed())
    box.send_keys(key or server.admin_key)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()


def open_queue(driver: WebDriver, server: Server, pid: int, key: str | None = None) -> None:
    open_page(driver, server, f"/review/{pid}", key)
    wait(driver, lambda d: "Showing" in text(d, "status"))


def press(driver: WebDriver, *keys: str) -> None:
    """Keys to whatever has focus (the stage after a queue opens), as a person types them."""
    chain = ActionChains(driver)
    for k in keys:
        chain.send_keys(k)
    chain.perform()


def showing(driver: WebDriver) -> str:
    return text(driver, "f-file")


def browser_errors(driver: WebDriver) -> list[str]:
    """Console messages since the last call that are script errors or CSP refusals."""
    logs = driver.get_log("browser")
    bad = ("Uncaught", "Content Security Policy", "Refused to")
    return [e["message"] for e in logs if any(b in e["message"] for b in bad)]


def screenshot(driver: WebDriver, name: str) -> None:
    """Saves `name`.png under $TAG2MASK_REVIEW_SCREENSHOTS when set (the README's pictures)."""
    folder = os.environ.get("TAG2MASK_REVIEW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def disc(arr: np.ndarray, cx: int, cy: int, r: int, value: int) -> np.ndarray:
    """`arr` with a brush dab painted as the page paints it (pixels within r of the centre)."""
    out = arr.copy()
    yy, xx = np.mgrid[: arr.shape[0], : arr.shape[1]]
    out[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = value
    return out
