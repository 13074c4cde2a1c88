"""The review page under a real browser: one headless chromium and one uvicorn per session.

The server runs the real app on a free port in a thread, on its own SQLite file (the
embedded default of `tag2mask serve`) and blob dir: it outlives single tests, so it must
not share the suite's PostgreSQL database, whose tables other tests empty (and whose
ids they restart) after every test. Each test makes its own project, so tests stay
independent without emptying anything.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.db import make_engine, make_sessionmaker, session_scope
from app.main import create_app
from app.migrate import upgrade_head
from app.services.keys import create_key
from app.settings import Settings
from tests.fixtures.db import require_or_skip

CHROMIUM = os.environ.get("TAG2MASK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TAG2MASK_CHROMEDRIVER", "/usr/bin/chromedriver")


@dataclass
class Server:
    url: str
    settings: Settings
    admin_key: str

    def key(self, role: str, project_id: int | None = None) -> str:
        engine = make_engine(self.settings.db_url, pool_size=1)
        try:
            with session_scope(make_sessionmaker(engine)) as s:
                return create_key(s, role, project_id)[1]
        finally:
            engine.dispose()

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root: Path = tmp_path_factory.mktemp("review-server")
    url = f"sqlite:///{root / 'tag2mask.db'}"
    upgrade_head(url)
    settings = Settings(database_url=url, data_dir=root / "data", job_runner="thread")
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="review-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    engine = make_engine(url, pool_size=1)
    with session_scope(make_sessionmaker(engine)) as s:
        admin = create_key(s, "admin", None)[1]
    engine.dispose()
    yield Server(url=f"http://127.0.0.1:{port}", settings=settings, admin_key=admin)
    uv.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's chromium through /usr/bin/chromedriver (selenium never downloads a driver)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        require_or_skip(f"no {CHROMIUM} or {CHROMEDRIVER}: apt-get install chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--disable-extensions",
        "--no-first-run",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
