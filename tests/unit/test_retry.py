"""The retry primitive: what is retried (and how long it waits), what is split, what is given up at once."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.backoff import Backoff
from chalicelib.faults import Failure, Fault
from chalicelib.retry import CallStats, Failed, GaveUp, retry_call, retry_pending, retry_request
from tests.support.faults import aws_error

THROTTLED = aws_error("dynamodb", "UpdateItem", "ProvisionedThroughputExceededException")
DENIED = aws_error("dynamodb", "UpdateItem", "AccessDeniedException")
REFUSED = aws_error("dynamodb", "BatchWriteItem", "ValidationException", "Item size has exceeded the maximum")
SLOW = Failure(Fault.RETRYABLE, "UnprocessedItems", "", "BatchWriteItem")


def backoff(attempts: int, sleeps: list[float]) -> Backoff:
    return Backoff(max_attempts=attempts, base=0.1, cap=1.0, sleep=sleeps.append, rand=lambda: 1.0)


class Answers:
    """A request that raises the given errors in turn, then answers `result`."""

    def __init__(self, *errors: Exception, result: Any = "ok"):
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


# --- one call ---------------------------------------------------------------------------------

def test_a_throttled_call_is_retried_with_growing_jittered_waits_until_it_succeeds():
    sleeps: list[float] = []
    stats = CallStats()
    request = Answers(THROTTLED, THROTTLED)
    assert retry_call(request, backoff(4, sleeps), stats) == "ok"
    assert request.calls == 3 and sleeps == [0.1, 0.2]
    assert stats == CallStats(calls=3, retries=2)


def test_a_call_still_throttled_after_every_attempt_gives_up_saying_so():
    sleeps: list[float] = []
    with pytest.raises(GaveUp) as gave_up:
        retry_call(Answers(*[THROTTLED] * 9), backoff(3, sleeps), CallStats())
    assert gave_up.value.attempts == 3 and gave_up.value.failure.fault is Fault.RETRYABLE
    assert gave_up.value.__cause__ is not None and len(sleeps) == 2


@pytest.mark.parametrize("error", [DENIED, aws_error("dynamodb", "UpdateItem", "ValidationException")])
def test_systemic_and_item_faults_are_never_retried(error):
    sleeps: list[float] = []
    stats = CallStats()
    request = Answers(error)
    with pytest.raises(GaveUp) as gave_up:
        retry_call(request, backoff(8, sleeps), stats)
    assert request.calls == 1 and sleeps == [] and stats == CallStats(calls=1, retries=0)
    assert gave_up.value.attempts == 1 and gave_up.value.__cause__ is error


def test_attempts_count_the_retryable_failures_before_a_systemic_one():
    with pytest.raises(GaveUp) as gave_up:
        retry_call(Answers(THROTTLED, DENIED), backoff(8, []), CallStats())
    assert gave_up.value.attempts == 2 and gave_up.value.failure.code == "AccessDeniedException"


def test_retry_request_retries_the_same_way_and_raises_botocores_own_error():
    sleeps: list[float] = []
    stats = CallStats()
    assert retry_request(Answers(THROTTLED), backoff(3, sleeps), stats) == "ok"
    assert stats == CallStats(calls=2, retries=1) and len(sleeps) == 1
    with pytest.raises(type(DENIED)) as raised:
        retry_request(Answers(THROTTLED, DENIED), backoff(8, []), CallStats())
    assert raised.value is DENIED
    last = aws_error("dynamodb", "UpdateItem", "ProvisionedThroughputExceededException")
    with pytest.raises(type(last)) as raised:
        retry_request(Answers(THROTTLED, last), backoff(2, []), CallStats())
    assert raised.value is last


# --- what is pending of a batch -----------------------------------------------------------------

class Batch:
    """A batch API: `refuse` items fail the whole request with an item fault, `leave[item]` = rounds an item
    is left unprocessed, `raises` = errors the next requests raise."""

    def __init__(self, refuse: frozenset[int] = frozenset(), leave: dict[int, int] | None = None,
                 raises: list[Exception] | None = None):
        self.refuse = set(refuse)
        self.leave = dict(leave or {})
        self.raises = list(raises or [])
        self.requests: list[list[int]] = []
        self.taken: list[int] = []

    def __call__(self, items: list[int]) -> list[tuple[int, Failure]]:
        self.requests.append(list(items))
        if self.raises:
            raise self.raises.pop(0)
        if self.refuse & set(items):
            raise REFUSED
        left = [item for item in items if self.leave.get(item, 0) > 0]
        for item in left:
            self.leave[item] -= 1
        self.taken.extend(item for item in items if item not in left)
        return [(item, SLOW) for item in left]


def by(size: int) -> Any:
    return lambda items: [items[i:i + size] for i in range(0, len(items), size)]


def test_only_what_is_still_pending_is_sent_again_after_a_wait():
    sleeps: list[float] = []
    stats = CallStats()
    batch = Batch(leave={3: 1, 7: 2})
    assert retry_pending(list(range(10)), batch, backoff(8, sleeps), stats, requests=by(5)) == []
    assert batch.requests == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [3, 7], [7]]
    assert sorted(batch.taken) == list(range(10)) and sleeps == [0.1, 0.2]
    assert stats == CallStats(calls=4, retries=2)


def test_what_outlasts_the_attempts_is_given_up_with_the_attempts_made():
    batch = Batch(leave={2: 99})
    given_up = retry_pending([1, 2, 3], batch, backoff(3, []), CallStats())
    assert given_up == [Failed(2, SLOW, 3)]
    assert batch.requests == [[1, 2, 3], [2], [2]]


def test_an_item_refusing_the_whole_request_is_isolated_by_halving_and_its_neighbours_land():
    stats = CallStats()
    batch = Batch(refuse={5})
    given_up = retry_pending(list(range(8)), batch, backoff(8, []), stats)
    assert [(f.item, f.failure.code, f.attempts) for f in given_up] == [(5, "ValidationException", 1)]
    assert given_up[0].error is REFUSED
    assert sorted(batch.taken) == [0, 1, 2, 3, 4, 6, 7]
    # [0..7] → [0..3] ok; [4..7] → [4 5] → [4] ok, [5] refused; [6 7] ok
    assert batch.requests == [list(range(8)), [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7]]
    assert stats == CallStats(calls=7, retries=0)


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_a_systemic_refusal_is_neither_retried_nor_split_one_call_per_request(code):
    sleeps: list[float] = []
    stats = CallStats()
    denied = aws_error("dynamodb", "BatchWriteItem", code)
    batch = Batch(raises=[denied] * 4)
    given_up = retry_pending(list(range(100)), batch, backoff(8, sleeps), stats, requests=by(25))
    assert [len(request) for request in batch.requests] == [25, 25, 25, 25]
    assert stats == CallStats(calls=4, retries=0) and sleeps == []
    assert [f.item for f in given_up] == list(range(100))
    assert {(f.failure.fault, f.failure.code, f.attempts) for f in given_up} == {(Fault.SYSTEMIC, code, 1)}


def test_a_throttled_whole_request_is_sent_again_whole():
    batch = Batch(raises=[aws_error("dynamodb", "BatchWriteItem", "ThrottlingException")])
    assert retry_pending([1, 2], batch, backoff(3, []), CallStats()) == []
    assert batch.requests == [[1, 2], [1, 2]]
