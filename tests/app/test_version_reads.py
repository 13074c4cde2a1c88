"""VersionReads and CoalescedReads: concurrent reads of one key share one query, never an
older one."""

import asyncio

import pytest

from app.api.list_cache import CoalescedReads, VersionReads


class Versions:
    """A version source that counts reads and lets the test decide when each one answers."""

    def __init__(self) -> None:
        self.value = 1
        self.reads: list[tuple[int, int]] = []  # (project, value at the moment it was sent)
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def read(self, project_id: int) -> str | None:
        sent = self.value  # what a snapshot taken now would see
        self.reads.append((project_id, sent))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return None if project_id == 404 else f"v{sent}"


def run(coro):
    return asyncio.run(coro)


def test_waiters_at_once_share_one_read():
    async def go():
        src = Versions()
        reads = VersionReads(src.read)
        tasks = [asyncio.create_task(reads.version(1)) for _ in range(20)]
        await asyncio.sleep(0)
        src.gate.set()
        return src, await asyncio.gather(*tasks)

    src, got = run(go())
    assert got == ["v1"] * 20 and len(src.reads) == 1


def test_a_request_during_a_read_waits_for_the_next_one():
    async def go():
        src = Versions()
        reads = VersionReads(src.read)
        early = asyncio.create_task(reads.version(1))
        while not src.reads:  # until the first read is out, with value 1
            await asyncio.sleep(0)
        src.value = 2  # a write commits and is acknowledged
        late = asyncio.create_task(reads.version(1))
        await asyncio.sleep(0)
        src.gate.set()
        return src, await early, await late

    src, early, late = run(go())
    assert (early, late) == ("v1", "v2")
    assert src.reads == [(1, 1), (1, 2)]


def test_projects_are_read_separately_and_a_missing_one_is_none():
    async def go():
        src = Versions()
        reads = VersionReads(src.read)
        src.gate.set()
        return await asyncio.gather(reads.version(1), reads.version(404), reads.version(1))

    assert run(go()) == ["v1", None, "v1"]


def test_a_failed_read_fails_its_waiters_and_the_next_read_is_fresh():
    async def go():
        src = Versions()
        reads = VersionReads(src.read)
        src.fail = RuntimeError("database gone")
        src.gate.set()
        results = await asyncio.gather(reads.version(1), reads.version(1), return_exceptions=True)
        src.fail = None
        return results, await reads.version(1)

    results, after = run(go())
    assert all(isinstance(r, RuntimeError) for r in results) and after == "v1"


def test_a_cancelled_waiter_leaves_the_others_served():
    async def go():
        src = Versions()
        reads = VersionReads(src.read)
        gone = asyncio.create_task(reads.version(1))
        stays = asyncio.create_task(reads.version(1))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        src.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await stays

    assert run(go()) == "v1"


def test_coalesced_reads_share_per_key_and_keys_stay_apart():
    """Renders of list pages: waiters for one key share one read; other keys read alone."""

    async def go():
        calls: list[str] = []
        gate = asyncio.Event()

        def render(key: str, who: int):
            async def read() -> str:
                calls.append(key)
                await gate.wait()
                return f"page {key}"

            return read

        reads: CoalescedReads[str, str] = CoalescedReads()
        tasks = [
            asyncio.create_task(reads.get(key, render(key, i)))
            for i, key in enumerate(["a", "b", "a", "a", "b"])
        ]
        await asyncio.sleep(0)
        gate.set()
        return calls, await asyncio.gather(*tasks)

    calls, got = run(go())
    assert sorted(calls) == ["a", "b"]
    assert got == ["page a", "page b", "page a", "page a", "page b"]
