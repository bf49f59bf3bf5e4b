"""The split of a run across processes, and the checkpoint it resumes from (no AWS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.resumable_scan import CheckpointMismatch, ScanCheckpoint, ScanShare


@pytest.mark.parametrize("threads, shares", [(1, 1), (4, 1), (4, 2), (3, 5), (1, 7)])
def test_the_shares_of_a_run_read_every_segment_exactly_once(threads: int, shares: int) -> None:
    read = [segment for share in range(shares) for segment in ScanShare(threads, share, shares).segments]
    assert sorted(read) == list(range(threads * shares))
    assert all(len(ScanShare(threads, share, shares).segments) == threads for share in range(shares))


def test_share_i_reads_the_segments_congruent_to_i() -> None:
    assert ScanShare(threads=3, share=1, shares=2).segments == [1, 3, 5]
    assert ScanShare(threads=3, share=1, shares=2).total_segments == 6


@pytest.mark.parametrize("threads, share, shares, message", [
    (0, 0, 1, "--segments"), (4, 2, 2, "--segment must be from 0 to 1"), (4, -1, 2, "--segment"),
    (4, 0, 0, "--total-segments"),
])
def test_a_share_outside_the_split_is_refused(threads: int, share: int, shares: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScanShare(threads, share, shares)


def test_a_checkpoint_resumes_its_own_run_only(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    identity = {"verb": "verify", "source": "users", "share": "1 of 2"}
    created = {"users": "2026-11-01 00:00:00+00:00"}
    first = ScanCheckpoint.open(path, identity, ("source",), ScanShare(2, 1, 2), tables_created=created)
    first.advance("source", 0, {"email": {"S": "a"}}, {"scanned": 3}, notes={"examples": {"missing": []}})
    first.advance("source", 1, None, {"scanned": 2})

    again = ScanCheckpoint.open(path, identity, ("source",), ScanShare(4, 1, 2), tables_created=created)
    assert again.resumed and again.total_segments == 4  # the file's split wins over this run's --segments
    assert [(s.segment, s.last_key, s.done) for s in again.scans["source"]] == [(1, {"email": {"S": "a"}}, False),
                                                                                 (3, None, True)]
    assert again.total("scanned") == 5 and again.notes == {"examples": {"missing": []}}
    assert again.pending() == [("source", 0)]

    with pytest.raises(CheckpointMismatch, match="share 0 of 2"):
        ScanCheckpoint.open(path, {**identity, "share": "0 of 2"}, ("source",), ScanShare(2, 0, 2),
                            tables_created=created)
    recreated = ScanCheckpoint.open(path, identity, ("source",), ScanShare(2, 1, 2),
                                    tables_created={"users": "2026-11-30 00:00:00+00:00"})
    assert recreated.discarded and not recreated.resumed and recreated.total("scanned") == 0
    assert ScanCheckpoint.open(path, identity, ("source",), ScanShare(2, 1, 2), restart=True,
                               tables_created=created).total("scanned") == 0
