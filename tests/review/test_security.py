"""The review page's defences: its headers, its static files, and a hostile category name."""

from __future__ import annotations

import re
import tomllib

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from app.api.routes.review_page import ASSETS, STATIC
from tests.review.page import (
    browser_errors,
    open_queue,
    review_project,
    text,
    wait,
)

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


def test_the_page_and_its_files_are_served_with_a_strict_policy(server):
    with server.client() as api:
        for path in ("/review", "/review/7"):
            r = api.get(path, headers={"Authorization": ""})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
        js = api.get("/review/assets/main.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert api.get("/review/assets/settings.py").status_code == 404
        assert api.get("/review/assets/..%2F..%2Fsettings.py").status_code == 404
        assert api.get("/review/0").status_code == 422  # project ids start at 1

    html = (STATIC / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    assert not re.search(r"\sstyle\s*=", html)  # no inline styles either
    with open(STATIC.parents[2] / "pyproject.toml", "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    assert "static/review/*" in package_data["app"]  # `pip install .` ships the page
    served = set(ASSETS) | {"index.html"}
    assert {p.name for p in STATIC.iterdir()} == served  # every file is served, none missing
    for name in ASSETS:
        if name.endswith(".js"):
            source = (STATIC / name).read_text()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in source, (name, sink)
            assert "localStorage" not in source and "document.cookie" not in source


def test_a_hostile_category_name_and_filename_stay_text(browser, server):
    data = review_project(
        server,
        confidences=(0.4,),
        categories=(XSS,),
        filenames=[f"{XSS}.png"],
        seed=4,
        metrics={"budget": [{"image_id": 0, "score": 0.5, "reasons": {XSS: 1}}]},
    )
    pid = data["project"]["id"]
    open_queue(browser, server, pid)
    assert text(browser, "f-file") == f"{XSS}.png"
    assert XSS in text(browser, "categories")
    assert [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#tags li")] == [XSS]

    browser.find_element(By.ID, "tab-suggestions").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#sugg-grid li"))
    assert f"{XSS}.png" in text(browser, "sugg-grid") and XSS in text(browser, "cat-table")

    try:
        alert = browser.switch_to.alert
        alert.dismiss()
        raise AssertionError("a script from a category name ran (alert)")
    except NoAlertPresentException:
        pass
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert browser_errors(browser) == []  # not even a handler that the CSP had to refuse
