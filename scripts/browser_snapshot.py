"""Log in to Label Studio in headless Chromium and screenshot pages (selenium + chromedriver).

Runs with the Label Studio virtualenv's Python (`pip install selenium` there), called by
scripts/label_studio_screenshots.py:

    .venv-labelstudio/bin/python scripts/browser_snapshot.py URL USER PASSWORD \\
        PAGE=OUT.png [PAGE=OUT.png ...]
"""

from __future__ import annotations

import sys
import time

from selenium import webdriver
from selenium.webdriver.common.by import By


def main() -> None:
    base, user, password, *shots = sys.argv[1:]
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1440,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options)
    try:
        driver.get(f"{base}/user/login/")
        time.sleep(2)
        driver.find_element(By.NAME, "email").send_keys(user)
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "form button, form input[type=submit]").click()
        time.sleep(3)
        for shot in shots:
            page, out = shot.rsplit("=", 1)
            driver.get(base + page)
            time.sleep(12)  # the editor loads its bundle, the image and decodes the RLE
            driver.save_screenshot(out)
            print("saved", out)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
