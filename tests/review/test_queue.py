"""The review page in chromium: sign in, the queue in confidence order, keyboard decisions."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.review.page import (
    SIZE,
    browser_errors,
    open_page,
    open_queue,
    press,
    queue_items,
    review_project,
    showing,
    text,
    wait,
)

pytestmark = pytest.mark.browser


def fetched(driver, path: str) -> int:
    """How many times the page requested `path` (the browser's resource timing)."""
    return int(
        driver.execute_script(
            "return performance.getEntriesByType('resource')"
            ".filter(e => new URL(e.name).pathname === arguments[0]).length",
            path,
        )
    )


def rgba(driver, canvas: str, x: float, y: float) -> list[int]:
    """A pixel of a canvas, (x, y) in image pixels (the canvas may be drawn finer)."""
    return list(
        driver.execute_script(
            "const c = document.getElementById(arguments[0]), k = c.width / arguments[3];"
            "return Array.from(c.getContext('2d')"
            ".getImageData(Math.floor(arguments[1] * k), Math.floor(arguments[2] * k), 1, 1).data)",
            canvas,
            x,
            y,
            SIZE,
        )
    )


def check_layers(driver) -> None:
    """Heat map, weakest regions, overlay toggle and opacity, by keyboard."""
    heat = driver.find_element(By.ID, "layer-heat")
    assert not heat.is_displayed()
    press(driver, "h")
    assert heat.is_displayed()
    weak, strong = rgba(driver, "layer-heat", 20, 20), rgba(driver, "layer-heat", 70, 20)
    assert weak[0] > 200 and weak[1] < 100 and weak[3] > strong[3]  # lower is redder, opaquer
    # The weakest region [8, 8, 40, 40] is outlined, its inside left clear.
    assert rgba(driver, "layer-regions", 8.05, 20)[3] == 255
    assert rgba(driver, "layer-regions", 24, 30)[3] == 0
    mask = driver.find_element(By.ID, "layer-mask")
    press(driver, "o")
    assert not mask.is_displayed()
    press(driver, "o", "h")
    assert mask.is_displayed() and not heat.is_displayed()
    slider = driver.find_element(By.ID, "opacity")
    slider.send_keys(Keys.HOME)
    assert mask.value_of_css_property("opacity") == "0"
    before = showing(driver)
    slider.send_keys(Keys.ARROW_RIGHT)  # moves the slider, not the queue
    assert float(mask.value_of_css_property("opacity")) > 0 and showing(driver) == before
    driver.find_element(By.ID, "stage").click()  # back to the stage (look tool: no paint)


def test_a_wrong_key_is_refused_in_words_and_not_kept(browser, server):
    data = review_project(server, confidences=(0.5,), seed=11)
    open_page(browser, server, f"/review/{data['project']['id']}", key="t2m_not-a-real-key")
    wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "did not accept this API key" in text(browser, "error-text")
    assert browser.execute_script("return sessionStorage.length") == 0
    assert browser.find_element(By.ID, "signin").is_displayed()
    assert not browser.find_element(By.ID, "queue").is_displayed()


def test_queue_in_confidence_order_and_keyboard_review(browser, server):
    data = review_project(server, seed=1)  # confidences 0.9, 0.3, 0.6, 0.1
    pid = data["project"]["id"]
    open_queue(browser, server, pid)
    names = [f"shape_1_{i}.png" for i in (3, 1, 2, 0)]  # lowest confidence first
    assert showing(browser) == names[0]
    assert text(browser, "queue-count").startswith("4 left to review")
    # The next image is fetched before the reviewer moves on, and not fetched again then.
    nxt = queue_items(server, pid)[1]
    wanted = [f"/v1/masks/{nxt['mask_id']}/file", f"/v1/images/{nxt['image']['id']}/file"]
    wait(browser, lambda d: all(fetched(d, w) == 1 for w in wanted))
    seen = [showing(browser)]
    for _ in range(3):
        before = seen[-1]
        press(browser, Keys.ARROW_RIGHT)
        wait(browser, lambda d, b=before: showing(d) != b)
        seen.append(showing(browser))
    assert seen == names
    assert all(fetched(browser, w) == 1 for w in wanted)
    for _ in range(3):
        press(browser, Keys.ARROW_LEFT)
    wait(browser, lambda d: showing(d) == names[0])
    assert "run #" in text(browser, "f-run") and str(data["job_id"]) in text(browser, "f-run")

    # The overlay paints the mask in its category's colour, the tags are listed.
    cats = {c["index"]: c["color"] for c in data["project"]["categories"]}
    mask = data["masks"][3]
    ys, xs = (mask > 0).nonzero()
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    pixel = browser.execute_script(
        "return Array.from(document.getElementById('layer-mask').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data)",
        x,
        y,
    )
    colour = cats[int(mask[y, x])]
    assert pixel == [int(colour[i : i + 2], 16) for i in (1, 3, 5)] + [255]
    assert browser.find_elements(By.CSS_SELECTOR, "#tags li")
    check_layers(browser)

    press(browser, "a")  # accept the lowest
    wait(browser, lambda d: showing(d) == names[1])
    press(browser, "c", "too coarse", Keys.ESCAPE, "r")  # comment, then reject
    wait(browser, lambda d: showing(d) == names[2])
    assert text(browser, "queue-count").startswith("2 left to review")

    items = {it["image"]["filename"]: it for it in queue_items(server, pid)}
    assert sorted(items) == sorted(names[2:])  # the two reviewed masks left the queue
    with server.client() as api:
        by_name = {}
        for iid in data["image_ids"]:
            im = api.get(f"/v1/images/{iid}").json()
            hist = api.get(f"/v1/images/{iid}/masks").json()["items"]
            by_name[im["filename"]] = hist[0]
    assert by_name[names[0]]["review_state"] == "accepted"
    assert by_name[names[0]]["review_comment"] is None
    assert by_name[names[1]]["review_state"] == "rejected"
    assert by_name[names[1]]["review_comment"] == "too coarse"
    assert by_name[names[2]]["review_state"] == "pending"

    # The key stayed in this tab: in sessionStorage, in no URL, sent to no other origin.
    assert browser.execute_script("return sessionStorage.length") == 1
    assert server.admin_key not in browser.current_url
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    origin = urlsplit(server.url)
    assert urls and all(urlsplit(u).netloc == origin.netloc for u in urls if "://" in u)
    assert browser_errors(browser) == []


def test_a_key_revoked_mid_review_signs_the_page_out(browser, server):
    data = review_project(server, confidences=(0.2, 0.4), seed=12)
    key = server.key("annotator", data["project"]["id"])
    open_queue(browser, server, data["project"]["id"], key=key)
    with server.client() as api:
        keys = api.get("/v1/keys").json()["items"]
        kid = next(k["id"] for k in keys if key.startswith(k["prefix"]))
        assert api.post(f"/v1/keys/{kid}/revoke").status_code == 200
    press(browser, "a")
    wait(browser, lambda d: d.find_element(By.ID, "signin").is_displayed())
    assert "did not accept this API key" in text(browser, "error-text")
    assert browser.execute_script("return sessionStorage.length") == 0


def test_the_key_is_typed_once_per_tab(browser, server):
    data = review_project(server, confidences=(0.3,), seed=13)
    pid, name = data["project"]["id"], data["project"]["name"]
    open_page(browser, server, "/review")
    link = wait(browser, lambda d: d.find_element(By.LINK_TEXT, f"{name} (#{pid})"))
    link.send_keys(Keys.ENTER)  # a new page load of /review/{pid}: no second sign-in
    wait(browser, lambda d: "Showing shape_13_0.png" in text(d, "status"))
    assert browser.current_url == f"{server.url}/review/{pid}"
    assert not browser.find_element(By.ID, "signin").is_displayed()
