"""The consumer's background offset committer: order, merging, flush."""

from __future__ import annotations

import asyncio

from consumer.service import _OffsetCommitter


class _Broker:
    """Records each commit request; holds each one until released."""

    def __init__(self) -> None:
        self.requests: list[dict[str, int]] = []
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def commit(self, offsets: dict[str, int]) -> dict[str, int]:
        self.requests.append(dict(offsets))
        self.arrived.set()
        await self.release.wait()
        return offsets


async def test_offsets_added_during_a_commit_go_merged_in_the_next_request() -> None:
    """While one commit request is out, later batches' offsets wait and then go in
    one request holding each partition's newest offset."""
    broker = _Broker()
    committed: list[list[float]] = []
    committer = _OffsetCommitter(broker.commit, committed.append)

    committer.add({"p0": 10}, 1.0)
    await asyncio.wait_for(broker.arrived.wait(), 5)
    committer.add({"p0": 20, "p1": 5}, 2.0)
    committer.add({"p0": 30}, 3.0)
    broker.release.set()
    await asyncio.wait_for(committer.flush(), 5)

    assert broker.requests == [{"p0": 10}, {"p0": 30, "p1": 5}]
    assert committed == [[1.0], [2.0, 3.0]]


async def test_flush_returns_only_after_every_added_offset_is_committed() -> None:
    """flush() waits for the request out and for the offsets queued behind it."""
    broker = _Broker()
    committer = _OffsetCommitter(broker.commit, lambda _started: None)
    committer.add({"p0": 1}, 0.0)
    await asyncio.wait_for(broker.arrived.wait(), 5)
    committer.add({"p0": 2}, 0.0)

    flushing = asyncio.create_task(committer.flush())
    await asyncio.sleep(0)
    assert not flushing.done()
    broker.release.set()
    await asyncio.wait_for(flushing, 5)

    assert broker.requests[-1] == {"p0": 2}


async def test_refused_commit_is_not_reported_as_committed() -> None:
    """A commit the group refuses (nothing committed) reports no batch as done."""

    async def refuse(_offsets: dict[str, int]) -> dict[str, int]:
        return {}

    committed: list[list[float]] = []
    committer = _OffsetCommitter(refuse, committed.append)
    committer.add({"p0": 7}, 1.0)
    await asyncio.wait_for(committer.flush(), 5)

    assert committed == []


async def test_abandon_leaves_the_unanswered_offsets_reported_uncommitted() -> None:
    """Offsets whose commit got no answer are reported by uncommitted() after
    abandon(); those already committed are not."""
    broker = _Broker()
    committer = _OffsetCommitter(broker.commit, lambda _started: None)
    committer.add({"p0": 4}, 0.0)
    broker.release.set()
    await asyncio.wait_for(committer.flush(), 5)
    broker.release.clear()
    broker.arrived.clear()
    committer.add({"p1": 9}, 0.0)
    await asyncio.wait_for(broker.arrived.wait(), 5)

    await asyncio.wait_for(committer.abandon(), 5)

    assert committer.uncommitted() == {"p1": 9}
