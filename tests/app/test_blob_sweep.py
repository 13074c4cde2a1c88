"""The orphaned-blob sweep: blobs no row references go once older than the grace period,
referenced and young ones stay, stale temp files go, and a re-put refreshes a blob's age."""

import os
import time

import pytest

from app.blobs import LocalBlobStore
from app.cli import main as cli_main
from app.db import make_engine, make_sessionmaker
from app.services.blob_refs import sweep_orphans
from app.tables import Image, Project

HOUR = 3600.0


@pytest.fixture
def factory(db_url):
    engine = make_engine(db_url, pool_size=2)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def store(tmp_path):
    return LocalBlobStore(tmp_path / "data" / "blobs")


def age(store: LocalBlobStore, key: str, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(store.path(key), (t, t))


def add_image_row(factory, key: str) -> None:
    with factory.begin() as s:
        p = Project(name="p", settings={})
        s.add(p)
        s.flush()
        s.add(
            Image(
                project_id=p.id,
                sha256=key,
                width=1,
                height=1,
                blob_key=key,
                filename="x.png",
                content_type="image/png",
                size_bytes=1,
            )
        )


def test_sweep_deletes_only_old_unreferenced_blobs(factory, store):
    kept, _ = store.put(b"referenced by a row")
    orphan, _ = store.put(b"left by a process killed before its commit")
    young, _ = store.put(b"an upload still in flight")
    add_image_row(factory, kept)
    for key in (kept, orphan):
        age(store, key, 2 * HOUR)
    stale_tmp = store.root / "tmp" / "half-written"
    stale_tmp.write_bytes(b"x")
    os.utime(stale_tmp, (time.time() - 2 * HOUR,) * 2)
    fresh_tmp = store.root / "tmp" / "being-written"
    fresh_tmp.write_bytes(b"y")

    with factory() as s:
        result = sweep_orphans(s, store, older_than_s=HOUR)

    assert result.deleted == [orphan] and result.examined == 2 and result.tmp_removed == 1
    assert store.exists(kept) and store.exists(young) and not store.exists(orphan)
    assert not stale_tmp.exists() and fresh_tmp.exists()


def test_putting_existing_bytes_again_makes_the_blob_young(factory, store):
    key, _ = store.put(b"uploaded long ago, its row deleted, uploaded again now")
    age(store, key, 2 * HOUR)
    assert store.put(b"uploaded long ago, its row deleted, uploaded again now") == (key, False)
    with factory() as s:
        assert sweep_orphans(s, store, older_than_s=HOUR).deleted == []
    assert store.exists(key)


def test_cli_sweep(factory, store, db_url, tmp_path, monkeypatch, capsys):
    orphan, _ = store.put(b"orphan")
    kept, _ = store.put(b"kept")
    add_image_row(factory, kept)
    monkeypatch.setenv("TAG2MASK_DATABASE_URL", db_url)
    monkeypatch.setenv("TAG2MASK_DATA_DIR", str(tmp_path / "data"))
    assert cli_main(["blobs", "sweep", "--older-than", "0"]) == 0
    assert not store.exists(orphan) and store.exists(kept)
    assert "1 unreferenced deleted" in capsys.readouterr().err
