"""LocalBlobStore: content addressing, idempotent writes, key validation, deletion."""

import hashlib
import os

import pytest

from app.blobs import BlobNotFound, LocalBlobStore


@pytest.fixture
def store(tmp_path):
    return LocalBlobStore(tmp_path / "blobs")


def stored_files(store: LocalBlobStore) -> list[str]:
    return sorted(p.name for p in store.root.rglob("*") if p.is_file())


class TestPut:
    def test_key_is_sha256_and_bytes_come_back(self, store):
        data = b"hello blobs"
        key, created = store.put(data)
        assert key == hashlib.sha256(data).hexdigest() and created is True
        assert store.get(key) == data
        assert store.exists(key)

    def test_layout_is_two_level_fanout(self, store):
        key, _ = store.put(b"x")
        assert store.path(key) == store.root / key[:2] / key[2:4] / key
        assert store.path(key).read_bytes() == b"x"

    def test_put_is_idempotent(self, store):
        k1, c1 = store.put(b"same")
        before = os.stat(store.path(k1))
        k2, c2 = store.put(b"same")
        assert k2 == k1 and c1 is True and c2 is False
        assert stored_files(store) == [k1]
        after = os.stat(store.path(k1))
        # not rewritten (the same file); only its mtime is refreshed, for the orphan sweep
        assert after.st_ino == before.st_ino and after.st_mtime_ns >= before.st_mtime_ns

    def test_different_content_different_keys(self, store):
        a, _ = store.put(b"a")
        b, _ = store.put(b"b")
        assert a != b and stored_files(store) == sorted([a, b])
        assert store.keys() == sorted([a, b])

    def test_empty_blob(self, store):
        key, created = store.put(b"")
        assert created and store.get(key) == b""
        assert key == hashlib.sha256(b"").hexdigest()

    def test_put_chunks_equals_put_of_concatenation(self, store, tmp_path):
        chunks = [b"ab", b"", b"cde" * 1000, b"f"]
        key, created = store.put_chunks(iter(chunks))
        assert created and key == hashlib.sha256(b"".join(chunks)).hexdigest()
        assert store.get(key) == b"".join(chunks)
        assert store.put(b"".join(chunks)) == (key, False)

    def test_failing_chunk_source_leaves_nothing(self, store):
        def chunks():
            yield b"partial"
            raise RuntimeError("client went away")

        with pytest.raises(RuntimeError):
            store.put_chunks(chunks())
        assert stored_files(store) == []  # no temp file, no blob
        assert store.keys() == []

    def test_no_temp_files_after_writes(self, store):
        store.put(b"one")
        store.put(b"one")
        assert list((store.root / "tmp").iterdir()) == []


class TestKeys:
    @pytest.mark.parametrize(
        "key",
        [
            "",
            "../../etc/passwd",
            "a" * 63,
            "a" * 65,
            "A" * 64,
            "g" * 64,
            "../" + "a" * 61,
            "a" * 62 + "/x",
            "/" + "a" * 63,
            "a" * 64 + "\n",
        ],
    )
    def test_path_refuses_non_keys(self, store, key):
        with pytest.raises(ValueError):
            store.path(key)

    def test_get_exists_delete_refuse_traversal(self, store, tmp_path):
        secret = tmp_path / "secret"
        secret.write_bytes(b"do not touch")
        for op in (store.get, store.exists, store.delete):
            with pytest.raises(ValueError):
                op("../secret")
        assert secret.read_bytes() == b"do not touch"

    def test_get_missing_raises_blob_not_found(self, store):
        with pytest.raises(BlobNotFound):
            store.get("0" * 64)
        assert not store.exists("0" * 64)


class TestDelete:
    def test_delete_removes_blob(self, store):
        key, _ = store.put(b"bye")
        keep, _ = store.put(b"stay")
        store.delete(key)
        assert not store.exists(key) and store.exists(keep)
        assert store.keys() == [keep]

    def test_delete_missing_is_a_no_op(self, store):
        store.delete("f" * 64)
        assert store.keys() == []

    def test_put_after_delete_recreates(self, store):
        key, _ = store.put(b"again")
        store.delete(key)
        assert store.put(b"again") == (key, True)
        assert store.get(key) == b"again"
