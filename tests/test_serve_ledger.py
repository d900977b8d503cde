"""What `floatseat serve` keeps in the ledger besides the policy: the daily licence maximum."""

from __future__ import annotations

from pathlib import Path

from floatseat.service.ports import LicenceDay, LicenceReport
from floatseat.store.ledger import SqlLedger, utc_day

DAY = 86_400


def test_each_licence_read_raises_the_maximum_of_its_utc_day(tmp_path: Path) -> None:
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        reads = [
            (0, 100, 40),  # 1970-01-01 00:00 UTC
            (3_600, 100, 47),
            (7_200, 100, 45),  # lower: the maximum stays 47
            (DAY - 1, 100, 46),
            (DAY, 200, 12),  # the next day, and a bigger tier
        ]
        for seq, (at, tier, licensed) in enumerate(reads):
            with ledger.transaction() as tx:
                tx.lock()
                tx.record_licence(LicenceReport(tier, licensed, at, seq))
        assert ledger.licence_days() == [
            LicenceDay("1970-01-01", 47, 100),
            LicenceDay("1970-01-02", 12, 200),
        ]
        assert ledger.licence_days(since="1970-01-02") == [LicenceDay("1970-01-02", 12, 200)]
    finally:
        ledger.close()


def test_a_stale_report_still_counts_for_the_day(tmp_path: Path) -> None:
    # A report older than the stored one (by watermark) does not replace it for the guard,
    # but it was a real reading of the licensed count: the evidence keeps it.
    ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        with ledger.transaction() as tx:
            tx.record_licence(LicenceReport(10, 3, 50, watermark=5))
            tx.record_licence(LicenceReport(10, 9, 60, watermark=4))
            assert tx.licence_report() == LicenceReport(10, 3, 50, 5)
        assert ledger.licence_days() == [LicenceDay("1970-01-01", 9, 10)]
    finally:
        ledger.close()


def test_days_are_utc() -> None:
    assert utc_day(1_700_000_000) == "2023-11-14"
