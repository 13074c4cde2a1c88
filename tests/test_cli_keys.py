"""`tag2mask keys create`: prints the key once on stdout, stores only its sha256."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db import make_engine
from tests.fixtures.app import bearer


def tag2mask_cmd() -> list[str]:
    """The installed console script (next to this interpreter, else on PATH)."""
    here = Path(sys.executable).parent / "tag2mask"
    found = str(here) if here.exists() else shutil.which("tag2mask")
    assert found, "the tag2mask console script is not installed (pip install -e .)"
    return [found]


def run_cli(args: list[str], db_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAG2MASK_")}
    env.update({"TAG2MASK_DATABASE_URL": db_url, "TAG2MASK_DATA_DIR": str(data_dir)})
    return subprocess.run(
        [*tag2mask_cmd(), *args], env=env, capture_output=True, text=True, timeout=60
    )


def api_key_rows(url: str) -> list[dict]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(text("SELECT * FROM api_keys"))]
    finally:
        engine.dispose()


@pytest.fixture
def viewer_key(pg_url, db_url, tmp_path) -> str:
    """A viewer key made by the CLI (db_url is requested so the tables are emptied after)."""
    assert db_url == pg_url
    proc = run_cli(["keys", "create", "--role", "viewer"], pg_url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class TestKeysCreate:
    def test_stdout_is_exactly_the_key(self, viewer_key):
        lines = viewer_key.split("\n")
        assert len(lines) == 2 and lines[1] == "", repr(viewer_key)
        key = lines[0]
        assert key.startswith("t2m_") and len(key) > 40 and key.strip() == key

    def test_key_can_read_but_not_write(self, viewer_key, client):
        key = viewer_key.strip()
        r = client.get("/v1/projects", headers=bearer(key))
        assert r.status_code == 200 and r.json() == {"items": []}
        r = client.post("/v1/projects", json={"name": "p", "categories": []}, headers=bearer(key))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"

    def test_only_the_hash_is_stored(self, viewer_key, pg_url):
        key = viewer_key.strip()
        rows = api_key_rows(pg_url)
        assert len(rows) == 1
        row = rows[0]
        assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
        assert row["role"] == "viewer" and row["project_id"] is None
        for value in row.values():
            assert key not in str(value)

    def test_scoped_key(self, pg_url, db_url, client, admin, tmp_path):
        p = client.post("/v1/projects", json={"name": "p", "categories": []}, headers=admin)
        pid = p.json()["id"]
        proc = run_cli(
            ["keys", "create", "--role", "annotator", "--project", str(pid)], pg_url, tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        key = proc.stdout.strip()
        r = client.get("/v1/projects", headers=bearer(key))
        assert [x["id"] for x in r.json()["items"]] == [pid]

    def test_unknown_project_fails_with_nothing_on_stdout(self, pg_url, db_url, tmp_path):
        proc = run_cli(
            ["keys", "create", "--role", "viewer", "--project", "999999"], pg_url, tmp_path
        )
        assert proc.returncode != 0
        assert proc.stdout == ""
        assert "999999" in proc.stderr
        assert api_key_rows(pg_url) == []


def cli_key(pg_url: str, data_dir: Path, *args: str) -> str:
    proc = run_cli(["keys", "create", *args], pg_url, data_dir)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


class TestKeysListAndRevoke:
    def test_create_says_where_on_stderr(self, pg_url, db_url, tmp_path):
        proc = run_cli(["keys", "create", "--role", "viewer"], pg_url, tmp_path)
        assert proc.returncode == 0
        assert str(tmp_path) in proc.stderr and "database postgresql" in proc.stderr
        assert proc.stdout.startswith("t2m_") and proc.stdout.count("\n") == 1

    def test_list_shows_keys_without_secrets_or_hashes(self, pg_url, db_url, tmp_path):
        key = cli_key(pg_url, tmp_path, "--role", "annotator", "--name", "anna")
        proc = run_cli(["keys", "list"], pg_url, tmp_path)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.strip().split("\n")
        assert lines[0].split()[:4] == ["id", "role", "project", "prefix"]
        assert len(lines) == 2 and "annotator" in lines[1] and "anna" in lines[1]
        assert key not in proc.stdout
        assert hashlib.sha256(key.encode()).hexdigest() not in proc.stdout

    def test_revoke_then_401(self, pg_url, db_url, tmp_path, make_client):
        client = make_client(auth_cache_ttl_s=0)
        key = cli_key(pg_url, tmp_path, "--role", "viewer")
        assert client.get("/v1/projects", headers=bearer(key)).status_code == 200
        key_id = api_key_rows(pg_url)[0]["id"]
        proc = run_cli(["keys", "revoke", str(key_id)], pg_url, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert f"revoked key {key_id}" in proc.stderr
        assert client.get("/v1/projects", headers=bearer(key)).status_code == 401
        listed = run_cli(["keys", "list", "--no-all"], pg_url, tmp_path)
        assert listed.stdout.strip().split("\n")[1:] == []

    def test_revoke_unknown_key(self, pg_url, db_url, tmp_path):
        proc = run_cli(["keys", "revoke", "424242"], pg_url, tmp_path)
        assert proc.returncode == 2 and "424242" in proc.stderr and proc.stdout == ""

    @pytest.mark.parametrize("key_id", ["0", "2147483648", "99999999999999999999"])
    def test_ids_outside_the_id_range_are_a_usage_error(self, pg_url, db_url, tmp_path, key_id):
        proc = run_cli(["keys", "revoke", key_id], pg_url, tmp_path)
        assert proc.returncode == 2 and proc.stdout == ""
        assert "1..2147483647" in proc.stderr and "Traceback" not in proc.stderr
