"""Write capacity: DynamoDB's item sizes, the token bucket, and backfill's `--max-wcu` — on an injected clock,
never by timing."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chalicelib import clients
from chalicelib.config import Settings
from chalicelib.replication.projection import project_user
from ops.backfill import run_backfill
from ops.resumable_scan import ScanShare
from ops.write_capacity import TokenBucket, item_size, value_size, write_units
from tests.ops.ops_support import RunOps, put_items, target_by_key, user
from tests.support.faults import FaultyClient, client_error
from tests.support.resources import StageResources


class FakeClock:
    """Virtual seconds: `sleep` moves time on at once (shared by threads)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.mark.parametrize("value, size", [
    ("", 0), ("abc", 3), ("é", 2), (b"\x00\x01", 2), (True, 1), (None, 1),
    (Decimal("1"), 2), (Decimal("12"), 2), (Decimal("123"), 3), (Decimal("1000"), 2), (Decimal("0.001"), 2),
    ({"ab", "c"}, 3), ([], 3), (["a", True], 3 + 2 + 2), ({"k": "v"}, 3 + 1 + 1 + 1),
])
def test_value_sizes_follow_dynamodbs_rules(value: Any, size: int) -> None:
    assert value_size(value) == size


def test_write_units_are_one_per_started_kilobyte() -> None:
    assert item_size({"email": "a@b.c", "active": True}) == 5 + 5 + 6 + 1
    assert write_units({"a": "x"}) == 1
    assert write_units({"a": "x" * 1023}) == 1  # 1 + 1023 bytes = 1 KB
    assert write_units({"a": "x" * 1024}) == 2
    assert write_units(None) == 1  # a delete of an item we did not see


def test_a_bucket_lets_a_burst_through_then_paces_to_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, clock=clock, sleep=clock.sleep)  # burst: one second's worth

    waits = [bucket.take(1) for _ in range(10)]
    assert waits == [0] * 10 and clock.now == 0
    assert bucket.take(1) == pytest.approx(0.1)
    assert bucket.take(5) == pytest.approx(0.5)  # larger writes wait longer
    assert bucket.take(25) == pytest.approx(2.5)  # a write larger than the burst still goes, after its wait
    assert clock.now == pytest.approx(3.1)


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=20, clock=clock, sleep=clock.sleep)
    clock.sleep(3600)
    assert [bucket.take(10), bucket.take(10), bucket.take(10)] == [0, 0, pytest.approx(1.0)]


def test_threads_sharing_a_bucket_stay_under_its_rate_together() -> None:
    # GIVEN 8 threads taking 50 units each, 1 or 3 at a time, through one bucket of 100 units/s
    reservations: list[tuple[float, float]] = []
    clock = FakeClock()
    bucket = TokenBucket(rate=100, clock=clock, sleep=lambda _s: None)
    lock = threading.Lock()

    def writer(units: int) -> None:
        for _ in range(50 // units + (50 % units > 0)):
            with lock:
                wait = bucket.reserve(units)
                reservations.append((clock() + wait, units))

    threads = [threading.Thread(target=writer, args=(1 + 2 * (n % 2),)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN by any moment t the units due are at most burst + rate × t
    spent = 0.0
    for due, units in sorted(reservations):
        spent += units
        assert spent <= 100 + 100 * due + 1e-9


def test_backfill_max_wcu_paces_every_write_by_its_size(aws: StageResources, tmp_path: Path) -> None:
    # GIVEN 60 users, one of whose target items weighs 2 KB, and a write that fails its condition (a stream
    # write landed first): it costs capacity all the same
    users = [user(n) for n in range(59)] + [user(59, city="C" * 500, email=f"{'e' * 480}@example.com")]
    put_items(aws["UsersTable"], users)
    real = clients.client("dynamodb")
    sent: list[str] = []

    def one_conditional_failure(call: Any, **kw: Any) -> Any:
        sent.append(kw["Item"]["city_email"]["S"])
        if len(sent) == 7:
            raise client_error("ConditionalCheckFailedException", operation="PutItem")
        return call(**kw)

    clock = FakeClock()
    spent: list[tuple[float, float]] = []

    class Recording(TokenBucket):
        def take(self, units: float) -> float:
            waited = super().take(units)
            spent.append((clock(), units))
            return waited

    bucket = Recording(rate=20, clock=clock, sleep=clock.sleep)

    # WHEN backfilling with one segment thread at 20 WCU/s
    report = run_backfill(Settings.from_env(aws.env()), FaultyClient(real, put_item=one_conditional_failure),
                          tmp_path / "cp.json", ScanShare(threads=1), page_size=25, limiter=bucket)

    # THEN every put was paid for by its item's size, the failed conditional one too
    assert report.complete
    sizes = [2 if len(city_email) > 900 else 1 for city_email in sent]
    assert [units for _, units in spent] == sizes
    assert sum(sizes) == 61 and write_units(project_user(users[59])) == 2
    # AND the writes were paced: past the first second's burst, 20 WCU per virtual second
    assert clock.now == pytest.approx((61 - 20) / 20)
    total = 0.0
    for moment, units in spent:
        total += units
        assert total <= 20 + 20 * moment + 1e-9
    assert len(target_by_key(aws["UsersByLocationTable"])) == 59  # the one "taken by the stream" was skipped


def test_max_wcu_on_the_command_line(aws: StageResources, run_ops: RunOps, capsys: pytest.CaptureFixture[str]) -> None:
    put_items(aws["UsersTable"], [user(n) for n in range(5)])
    assert run_ops("backfill", "--max-wcu", "1000", "--no-progress") == 0
    assert "writes limited to 1000 WCU/s" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        run_ops("backfill", "--max-wcu", "0")
    assert refused.value.code == 2
    assert "must be positive" in capsys.readouterr().err
