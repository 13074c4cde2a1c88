"""The request's unit of work: blobs written by a failed request or batch item are removed,
blobs still referenced are kept, released blobs go only after commit."""

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from app.blobs import LocalBlobStore
from app.db import make_engine, make_sessionmaker
from app.tables import Image, Project
from app.unit_of_work import Savepoint, UnitOfWork
from tests.fixtures.db import truncate_all


@pytest.fixture(params=["postgres", "sqlite"])
def url(request) -> Iterator[str]:
    u = request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")
    yield u
    truncate_all(u)


@pytest.fixture
def factory(url):
    engine = make_engine(url, pool_size=2)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def store(tmp_path):
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def project_id(factory) -> int:
    with factory() as s:
        p = Project(name="p", settings={})
        s.add(p)
        s.commit()
        return p.id


def add_image(uow: UnitOfWork, project_id: int, data: bytes) -> Image:
    key = uow.put_blob(data)
    img = Image(
        project_id=project_id,
        sha256=key,
        width=1,
        height=1,
        blob_key=key,
        filename="x.png",
        content_type="image/png",
        size_bytes=len(data),
    )
    uow.session.add(img)
    uow.session.flush()
    return img


def n_images(factory) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(Image))


class TestRequest:
    def test_commit_keeps_rows_and_blobs(self, factory, store, project_id):
        uow = UnitOfWork(factory, store)
        add_image(uow, project_id, b"a")
        uow.commit()
        uow.close()
        assert n_images(factory) == 1 and len(store.keys()) == 1

    def test_rollback_removes_rows_and_new_blobs(self, factory, store, project_id):
        uow = UnitOfWork(factory, store)
        add_image(uow, project_id, b"a")
        uow.rollback()
        uow.close()
        assert n_images(factory) == 0 and store.keys() == []

    def test_rollback_keeps_blobs_that_existed_before(self, factory, store, project_id):
        first = UnitOfWork(factory, store)
        add_image(first, project_id, b"shared")
        first.commit()
        first.close()
        other = factory()
        other.add(Project(name="q", settings={}))
        other.commit()
        q = other.scalar(select(Project.id).where(Project.name == "q"))
        other.close()
        uow = UnitOfWork(factory, store)
        add_image(uow, q, b"shared")  # the blob was already there: not this request's
        uow.rollback()
        uow.close()
        assert n_images(factory) == 1 and len(store.keys()) == 1

    def test_released_blobs_go_only_after_commit(self, factory, store, project_id):
        setup = UnitOfWork(factory, store)
        img = add_image(setup, project_id, b"old")
        setup.commit()
        setup.close()
        uow = UnitOfWork(factory, store)
        row = uow.session.get(Image, img.id)
        uow.session.delete(row)
        uow.session.flush()
        uow.release_blobs_after_commit([row.blob_key])
        assert store.exists(row.blob_key)  # not before the commit
        uow.commit()
        uow.close()
        assert store.keys() == [] and n_images(factory) == 0

    def test_released_blobs_stay_on_rollback(self, factory, store, project_id):
        setup = UnitOfWork(factory, store)
        img = add_image(setup, project_id, b"old")
        setup.commit()
        setup.close()
        uow = UnitOfWork(factory, store)
        uow.session.delete(uow.session.get(Image, img.id))
        uow.session.flush()
        uow.release_blobs_after_commit([img.blob_key])
        uow.rollback()
        uow.close()
        assert n_images(factory) == 1 and store.exists(img.blob_key)


class TestSavepoint:
    def test_failed_item_leaves_nothing_and_spares_earlier_items(self, factory, store, project_id):
        uow = UnitOfWork(factory, store)
        with Savepoint(uow):
            add_image(uow, project_id, b"good")
        with pytest.raises(RuntimeError), Savepoint(uow):
            add_image(uow, project_id, b"bad")
            uow.put_blob(b"good")  # also uses the earlier item's blob
            raise RuntimeError("item failed after writing")
        uow.commit()
        uow.close()
        with factory() as s:
            assert [i.sha256 for i in s.scalars(select(Image))] == [store.keys()[0]]
        assert len(store.keys()) == 1 and store.get(store.keys()[0]) == b"good"

    def test_request_failing_after_good_items_leaves_nothing(self, factory, store, project_id):
        """All-or-nothing per image inside the batch, but the request as a whole still rolls
        back when it fails afterwards."""
        uow = UnitOfWork(factory, store)
        uow.session.scalar(select(Project).where(Project.id == project_id))  # a read first
        with Savepoint(uow):
            add_image(uow, project_id, b"one")
        with Savepoint(uow):
            add_image(uow, project_id, b"two")
        uow.rollback()
        uow.close()
        assert n_images(factory) == 0
        assert store.keys() == []
