"""The suggestions view, keyboard-only use with visible focus, and 200 % zoom."""

from __future__ import annotations

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.fixtures.build import mask_bytes
from tests.review.page import SIZE, open_queue, press, review_project, screenshot, text, wait

pytestmark = pytest.mark.browser


def test_suggestions_with_reasons_and_category_quality(browser, server):
    metrics = {
        "budget": [
            {"image_id": 2, "score": 0.9, "reasons": {"uncertainty": 0.8, "rare_categories": 0.1}},
            {"image_id": 0, "score": 0.5, "reasons": {"disagreement": 0.4}},
        ],
        "pnet": {"iou": {"1": 0.81, "2": 0.35}},
    }
    data = review_project(server, confidences=(0.3, 0.5, 0.7), seed=5, metrics=metrics)
    pid, ids = data["project"]["id"], data["image_ids"]
    human = np.zeros((SIZE, SIZE), np.uint8)
    human[10:30, 10:30] = 1
    with server.client() as api:
        r = api.put(
            f"/v1/images/{ids[1]}/mask", files={"file": ("m.png", mask_bytes(human), "image/png")}
        )
        assert r.status_code == 200, r.text
    open_queue(browser, server, pid)
    screenshot(browser, "review-queue")

    tab = browser.find_element(By.ID, "tab-suggestions")
    tab.send_keys(Keys.ENTER)  # keyboard only
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sugg-grid li")) == 2)
    cards = browser.find_elements(By.CSS_SELECTOR, "#sugg-grid li")
    assert "shape_5_2.png" in cards[0].text and "shape_5_0.png" in cards[1].text
    assert "uncertain pixels (low confidence)" in cards[0].text
    assert "uncertainty: 0.800" in cards[0].text
    assert "the two networks disagree" in cards[1].text
    wait(
        browser,
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('#sugg-grid img')]"
            ".every(i => i.complete && i.naturalWidth === arguments[0])",
            SIZE,
        ),
    )
    rows = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in browser.find_elements(By.CSS_SELECTOR, "#cat-table tbody tr")
    ]
    # Neediest first: not measured, then the lowest held-out IoU.
    assert [r[0].strip() for r in rows] == ["triangle", "square", "circle"]
    assert rows[0][2:4] == ["0", "not measured"]
    assert rows[1][2:4] == ["0", "0.350 (low)"]
    assert rows[2][2:4] == ["1", "0.810"]  # the human mask of image 1 paints circles
    assert text(browser, "sugg-run") == f"From run #{data['job_id']}."
    screenshot(browser, "review-suggestions")

    budget = browser.find_element(By.ID, "budget")
    budget.clear()
    budget.send_keys("1", Keys.ENTER)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sugg-grid li")) == 1)
    assert "#suggestions" in browser.current_url and server.admin_key not in browser.current_url


def test_keyboard_focus_is_visible_and_200_percent_zoom_reflows(browser, server):
    data = review_project(server, confidences=(0.2, 0.4), seed=6)
    open_queue(browser, server, data["project"]["id"])
    assert browser.switch_to.active_element.get_attribute("id") == "stage"
    press(browser, Keys.TAB)
    focused = browser.switch_to.active_element
    style = browser.execute_script(
        "const s = getComputedStyle(arguments[0]); return [s.outlineStyle, s.outlineWidth]",
        focused,
    )
    assert style == ["solid", "3px"]
    try:
        # 200 % zoom of a 1280 px window is a 640 px wide viewport of the same CSS.
        browser.set_window_size(640, 1000)
        wait(
            browser,
            lambda d: d.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth"
            ),
        )
        stage = browser.find_element(By.ID, "stage").rect
        side = browser.find_element(By.CSS_SELECTOR, ".side").rect
        assert side["y"] >= stage["y"] + stage["height"]  # one column, nothing cut off
        size = browser.execute_script(
            "return parseFloat(getComputedStyle(document.getElementById('f-file')).fontSize)"
        )
        assert size >= 16
    finally:
        browser.set_window_size(1280, 1000)
