"""Lambda's event-source-mapping decisions (local_stack.delivery), with no AWS and no threads."""

from __future__ import annotations

import pytest

from local_stack.delivery import Outcome, Result, RetryPolicy, batch_due, outcome_of, queue_deletions, stream_settled

IDS = ["100", "200", "300", "400"]


def test_a_handler_that_returns_normally_settles_the_whole_batch():
    # GIVEN a handler that returned None  WHEN Lambda reads it  THEN everything is settled
    outcome = outcome_of(None, None, IDS, report_failures=False)
    assert outcome.result is Result.OK
    assert stream_settled(IDS, outcome) == 4
    assert queue_deletions(IDS, outcome) == IDS


def test_a_handler_that_raises_gets_the_same_batch_again():
    outcome = outcome_of(None, ValueError("boom"), IDS, report_failures=True)
    assert outcome.result is Result.FAILED
    assert outcome.describe() == "raised ValueError: boom"
    assert stream_settled(IDS, outcome) == 0
    assert queue_deletions(IDS, outcome) == []


def test_batch_item_failures_are_ignored_unless_the_mapping_reports_them():
    response = {"batchItemFailures": [{"itemIdentifier": "300"}]}
    outcome = outcome_of(response, None, IDS, report_failures=False)
    assert outcome.result is Result.OK
    assert queue_deletions(IDS, outcome) == IDS


def test_a_stream_resumes_from_the_earliest_reported_failure():
    response = {"batchItemFailures": [{"itemIdentifier": "400"}, {"itemIdentifier": "200"}]}
    outcome = outcome_of(response, None, IDS, report_failures=True)
    assert outcome.result is Result.PARTIAL
    assert outcome.failed_ids == ("400", "200")
    assert stream_settled(IDS, outcome) == 1  # only "100" is behind the checkpoint


def test_a_queue_deletes_all_but_the_reported_failures():
    outcome = outcome_of({"batchItemFailures": [{"itemIdentifier": "200"}]}, None, IDS, report_failures=True)
    assert queue_deletions(IDS, outcome) == ["100", "300", "400"]
    assert outcome.describe() == "1 item failure(s) reported"


def test_an_empty_failure_list_is_a_success():
    assert outcome_of({"batchItemFailures": []}, None, IDS, report_failures=True).result is Result.OK


@pytest.mark.parametrize("reported", [
    [{"itemIdentifier": "999"}],  # not in the batch
    [{"itemIdentifier": ""}],
    [{"itemIdentifier": None}],
    [{}],
    ["200"],
])
def test_an_unmappable_failure_report_fails_the_whole_batch(reported):
    outcome = outcome_of({"batchItemFailures": reported}, None, IDS, report_failures=True)
    assert outcome.result is Result.FAILED
    assert stream_settled(IDS, outcome) == 0
    assert queue_deletions(IDS, outcome) == []


def test_a_failure_list_that_is_not_a_list_fails_the_whole_batch():
    outcome = outcome_of({"batchItemFailures": "200"}, None, IDS, report_failures=True)
    assert outcome.result is Result.FAILED


@pytest.mark.parametrize(("buffered", "batch_size", "waited", "window", "due"), [
    (0, 10, 5.0, 0.0, False),  # nothing to deliver
    (1, 10, 0.0, 0.0, True),  # no window: deliver what there is
    (3, 10, 0.5, 1.0, False),  # inside the window, not full
    (3, 10, 1.0, 1.0, True),  # the window has passed
    (10, 10, 0.0, 5.0, True),  # full
])
def test_a_batch_is_due_when_full_or_when_its_window_has_passed(buffered, batch_size, waited, window, due):
    assert batch_due(buffered, batch_size, waited, window) is due


def test_retries_back_off_exponentially_up_to_a_cap_and_stop_after_the_maximum():
    policy = RetryPolicy(max_retry_attempts=3, base=0.1, cap=0.3)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.3, 0.3]
    assert not policy.exhausted(3)
    assert policy.exhausted(4)


def test_minus_one_retries_forever_like_lambdas_default():
    assert not RetryPolicy(max_retry_attempts=-1).exhausted(10_000)


def test_ok_describes_itself_plainly():
    assert Outcome(Result.OK).describe() == "ok"
