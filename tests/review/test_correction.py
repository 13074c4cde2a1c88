"""Correcting a mask in chromium (brush, eraser, undo, save) and a superseded mask's 409."""

from __future__ import annotations

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.fixtures.pseudo import finished_pipeline_job
from tests.review.page import (
    SIZE,
    browser_errors,
    disc,
    open_queue,
    press,
    queue_items,
    read_png,
    review_project,
    screenshot,
    showing,
    text,
    wait,
)

pytestmark = pytest.mark.browser

RADIUS = 4  # the brush size slider's default


def click_pixel(driver, x: int, y: int) -> None:
    """A pointer click on image pixel (x, y) of the stage."""
    top = driver.find_element(By.ID, "layer-regions")
    w, h = top.size["width"], top.size["height"]
    dx = round((x + 0.5) * w / SIZE - w / 2)
    dy = round((y + 0.5) * h / SIZE - h / 2)
    ActionChains(driver).move_to_element_with_offset(top, dx, dy).click().perform()


def test_a_painted_correction_becomes_the_human_mask(browser, server):
    data = review_project(server, confidences=(0.2, 0.7), seed=2)
    pid, image_id = data["project"]["id"], data["image_ids"][0]
    mask_id = queue_items(server, pid)[0]["mask_id"]
    open_queue(browser, server, pid)
    assert showing(browser) == "shape_2_0.png"
    assert browser.find_element(By.ID, "save").get_attribute("disabled")

    press(browser, "b", "3", " ")  # brush, category 3, a dab at the centre (keyboard only)
    press(browser, "2")
    click_pixel(browser, 20, 70)  # a dab of category 2 with the pointer
    press(browser, "e", "l", " ")  # eraser one step right of the centre: a dab of 0 ...
    press(browser, "z")  # ... undone
    assert not browser.find_element(By.ID, "save").get_attribute("disabled")
    screenshot(browser, "review-correction")
    press(browser, "s")
    wait(browser, lambda d: "Saved the correction" in text(d, "status"))
    assert showing(browser) == "shape_2_1.png"  # moved on

    with server.client() as api:
        r = api.get(f"/v1/images/{image_id}/mask", params={"source": "human"})
        assert r.status_code == 200, r.text
        human_id = int(r.headers["x-mask-id"])
        detail = api.get(f"/v1/masks/{human_id}").json()
        tags = api.get(f"/v1/images/{image_id}").json()["tags"]
    saved = read_png(r.content)
    centre = disc(data["masks"][0], SIZE // 2, SIZE // 2, RADIUS, 3)
    # The pointer dab lands on (20, 70) up to the rounding of CSS pixels to image pixels.
    candidates = [
        disc(centre, 20 + dx, 70 + dy, RADIUS, 2) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    ]
    assert any(np.array_equal(saved, c) for c in candidates), np.argwhere(saved != centre)
    assert saved[70, 20] == 2 and saved[SIZE // 2, SIZE // 2 + RADIUS] == 3  # the undo held
    assert detail["source"] == "human" and detail["corrected_from_id"] == mask_id
    assert {"square", "triangle"} <= set(tags)  # painted categories become tags
    assert mask_id not in [it["mask_id"] for it in queue_items(server, pid)]
    assert browser_errors(browser) == []


def test_a_superseded_mask_shows_the_409_and_reloads(browser, server):
    data = review_project(server, confidences=(0.2, 0.6), seed=3)
    pid, first = data["project"]["id"], data["image_ids"][0]
    old = queue_items(server, pid)[0]["mask_id"]
    open_queue(browser, server, pid)
    assert showing(browser) == "shape_3_0.png"
    # A newer run replaces the open mask behind the reviewer's back.
    finished_pipeline_job(server.settings, pid, [first], [data["masks"][0]], [0.95])

    press(browser, "a")
    wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    message = text(browser, "error-text")
    assert "superseded" in message and "nothing was saved" in message
    assert browser.switch_to.active_element.get_attribute("id") == "error-reload"
    with server.client() as api:
        assert api.get(f"/v1/masks/{old}").json()["review_state"] == "pending"

    press(browser, Keys.ENTER)  # the focused "Reload the queue"
    wait(browser, lambda d: not d.find_element(By.ID, "error").is_displayed())
    wait(browser, lambda d: showing(d) == "shape_3_1.png")  # 0.6 now before the new 0.95
    assert text(browser, "queue-count").startswith("2 left to review")

    # A correction of a mask superseded meanwhile is refused the same way, not saved.
    second = data["image_ids"][1]
    finished_pipeline_job(server.settings, pid, [second], [data["masks"][1]], [0.97])
    press(browser, "b", " ", "s")
    wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "superseded" in text(browser, "error-text")
    with server.client() as api:
        human = api.get(f"/v1/images/{second}/mask", params={"source": "human"})
    assert human.status_code == 404
