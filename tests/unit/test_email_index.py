"""EmailIndex: read in the background, once for a crowd, at most once per interval on misses, kept on failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.aws.email_index import EmailIndex, IndexTiming, IndexUnavailable
from bot.aws.errors import AwsError
from tests.conftest import wait_until
from tests.support.index_clock import IndexClock


class Source:
    """What the index reads: the current entries, a gate each read waits at, and a failure to raise."""

    def __init__(self, entries: dict[str, str]) -> None:
        self.entries = dict(entries)
        self.gate = threading.Event()
        self.gate.set()
        self.failure: Exception | None = None
        self.reads = 0
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, str]:
        with self._lock:
            self.reads += 1
        assert self.gate.wait(10), "the test never opened the gate"
        if self.failure is not None:
            raise self.failure
        return dict(self.entries)


@pytest.fixture
def make_index() -> Iterator[Callable[..., tuple[EmailIndex[str], Source]]]:
    made: list[tuple[EmailIndex[str], Source]] = []

    def _make(entries: dict[str, str] | None = None, **timing: float) -> tuple[EmailIndex[str], Source]:
        source = Source(entries if entries is not None else {"a@x": "alice"})
        index = EmailIndex(source, timing=IndexTiming(**timing))
        made.append((index, source))
        return index, source

    yield _make
    for index, source in made:
        source.gate.set()
        index.stop()


def denied() -> AwsError:
    return AwsError(
        "AWS refused iam:GetAccountAuthorizationDetails: no (AccessDenied)", operation="x", code="AccessDenied"
    )


def test_a_crowd_on_a_cold_start_waits_for_one_read(make_index: Callable[..., tuple[EmailIndex[str], Source]]) -> None:
    index, source = make_index()
    source.gate.clear()
    index.start()
    with ThreadPoolExecutor(20) as pool:
        answers = [pool.submit(index.get, "a@x" if n % 2 else "nobody@x") for n in range(20)]
        wait_until(lambda: source.reads == 1)  # the refresher's read has begun
        time.sleep(0.2)  # every lookup is waiting now, none has started a read of its own
        assert source.reads == 1
        source.gate.set()
        found = [a.result(timeout=5) for a in answers]
    assert found == [None if n % 2 == 0 else "alice" for n in range(20)]
    assert source.reads == 1


def test_misses_within_the_interval_ask_for_one_read(
    make_index: Callable[..., tuple[EmailIndex[str], Source]], index_clock: IndexClock
) -> None:
    index, source = make_index(miss_seconds=60)
    assert index.get("a@x") == "alice"
    assert [index.get("b@x") for _ in range(5)] == [None] * 5  # the first read is brand new: no new read
    assert source.reads == 1
    source.entries["b@x"] = "bob"
    index_clock.advance(61)  # the interval has passed: the first miss below asks for a read
    with ThreadPoolExecutor(30) as pool:
        found = list(pool.map(index.get, ["b@x"] * 30 + ["c@x"] * 30))
    assert found == ["bob"] * 30 + [None] * 30
    assert [index.get("c@x") for _ in range(5)] == [None] * 5
    assert source.reads == 2


def test_a_hit_does_not_wait_for_a_read_under_way(make_index: Callable[..., tuple[EmailIndex[str], Source]]) -> None:
    index, source = make_index(miss_seconds=0.0, wait_seconds=5.0)
    assert index.get("a@x") == "alice"
    source.gate.clear()
    missing = threading.Thread(target=index.get, args=("b@x",))
    missing.start()
    wait_until(lambda: source.reads == 2, timeout=2)
    began = time.monotonic()
    assert index.get("a@x") == "alice"
    assert time.monotonic() - began < 2.5  # not the 5 s a miss may wait
    source.gate.set()
    missing.join(5)


def test_a_miss_waits_for_a_read_under_way_no_longer_than_its_bound(
    make_index: Callable[..., tuple[EmailIndex[str], Source]],
) -> None:
    index, source = make_index(wait_seconds=0.3)
    source.gate.clear()
    began = time.monotonic()
    with pytest.raises(IndexUnavailable) as raised:
        index.get("a@x")
    assert 0.25 <= time.monotonic() - began < 2
    assert str(raised.value) == ""  # still reading, nothing failed
    source.gate.set()
    wait_until(lambda: index.ready, timeout=2)
    assert index.get("a@x") == "alice"


def test_a_failed_read_keeps_the_previous_entries(make_index: Callable[..., tuple[EmailIndex[str], Source]]) -> None:
    index, source = make_index(miss_seconds=0.2)
    assert index.get("a@x") == "alice"
    source.failure = denied()
    source.entries = {}
    time.sleep(0.25)
    assert index.get("b@x") is None  # asked for a read, which failed
    assert source.reads == 2
    assert index.get("a@x") == "alice"
    source.failure = None
    source.entries = {"b@x": "bob"}
    time.sleep(0.25)
    assert index.get("b@x") == "bob"
    assert index.get("a@x") is None  # the new read replaced the old entries


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        pytest.param(denied(), "AWS refused iam:GetAccountAuthorizationDetails", id="AWS error"),
        pytest.param(KeyError("UserDetailList"), "an unexpected error, which is logged", id="a bug"),
    ],
)
def test_an_index_never_read_says_why(
    make_index: Callable[..., tuple[EmailIndex[str], Source]], failure: Exception, said: str
) -> None:
    index, source = make_index(miss_seconds=0.2, retry_seconds=60)
    source.failure = failure
    with pytest.raises(IndexUnavailable, match=said):
        index.get("a@x")
    source.failure = None
    time.sleep(0.25)
    assert index.get("a@x") == "alice"  # the refresher outlived the failure
    assert source.reads == 2


def test_the_index_is_read_again_on_its_schedule(make_index: Callable[..., tuple[EmailIndex[str], Source]]) -> None:
    index, source = make_index(refresh_seconds=0.2, miss_seconds=60)
    index.start()
    wait_until(lambda: source.reads >= 3, timeout=3)
    source.entries["b@x"] = "bob"
    wait_until(lambda: index.get("b@x") == "bob", timeout=3)


def test_a_stopped_index_reads_no_more(make_index: Callable[..., tuple[EmailIndex[str], Source]]) -> None:
    index, source = make_index(refresh_seconds=0.1)
    assert index.get("a@x") == "alice"
    index.stop()
    reads = source.reads
    time.sleep(0.3)
    assert source.reads == reads
    assert index.get("a@x") == "alice"
