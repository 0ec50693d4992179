"""`tapewatch demo` on the bundled real sample, as a user runs it from a fresh clone."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tapewatch.cli import app
from tapewatch.commands.demo import sample_dir
from tapewatch.store import Store

runner = CliRunner()


def test_demo_imports_the_sample_shows_factors_study_and_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["demo"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    store = Store(tmp_path / "tapewatch-demo-data")
    inv = store.inventory()
    assert {"trade", "bar", "book_delta", "quote"} <= set(inv["kind"].to_list())
    assert "15 imported, 1 skipped, 0 failed" in out  # PROVENANCE.md is listed as skipped
    assert "taker flow and CVD from the real Binance spot trades" in out
    assert "could not tell on 744 of 744 bars" in out  # no inputs for the detector in January 2022
    for lack in ("open interest", "book depth", "funding", "premium"):
        assert f"missing: {lack}" in out.lower() or lack in out.lower()
    report = tmp_path / "tapewatch-demo-report.html"
    assert report.is_file() and report.stat().st_size > 100_000
    # idempotent: the second run adds no row
    counts = dict(zip(inv["kind"].to_list(), inv["rows"].to_list()))
    again = runner.invoke(app, ["demo"], env={"COLUMNS": "200"})
    assert again.exit_code == 0 and "0 new rows" in " ".join(again.output.split())
    inv2 = store.inventory()
    assert dict(zip(inv2["kind"].to_list(), inv2["rows"].to_list())) == counts


def test_sample_files_are_the_real_recorded_data_unmodified(shared: Path) -> None:
    """Every data file in the bundled sample is byte-identical to a real file in tests/data
    (recordings gzip-compressed), so the demo never runs on invented data."""
    originals = {p.name: p for p in shared.rglob("*") if p.is_file()}
    files = [p for p in sample_dir().rglob("*") if p.is_file() and p.name != "PROVENANCE.md"]
    assert len(files) == 15
    for f in files:
        data = f.read_bytes()
        name = f.name
        if f.parent.name == "recordings":
            data, name = gzip.decompress(data), name.removesuffix(".gz")
        assert name in originals, f
        assert data == originals[name].read_bytes(), f
