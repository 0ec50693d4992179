"""The backfill progress bar: files done of planned, bytes downloaded and rate, REST pages, ETA.

"Done" counts only what succeeded (imported, or already held); what failed, was not published
or was not attempted is shown beside it as "not fetched", so a run that fetched nothing never
shows a full bar."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text


class BytesColumn(ProgressColumn):
    """Bytes downloaded so far and the average rate (``12.3 MB · 4.1 MB/s``)."""

    def render(self, task: Task) -> Text:
        got = int(task.fields.get("bytes", 0))
        if not got:
            return Text("")
        elapsed = task.elapsed or 0.0
        rate = f" · {decimal(int(got / elapsed))}/s" if elapsed > 0.5 else ""
        return Text(f"{decimal(got)}{rate}", style="progress.download")


class MissedColumn(ProgressColumn):
    """``· 38 not fetched`` when units of the row failed (empty otherwise)."""

    def render(self, task: Task) -> Text:
        missed = int(task.fields.get("missed", 0))
        return Text(f"· {missed} not fetched", style="red") if missed else Text("")


class BackfillProgress:
    """Two rows: archive files (with bytes) and REST pages. Disabled when ``console`` is None.

    Counts are kept even when disabled, for the summary.
    """

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.bytes = 0
        self.started = time.monotonic()
        self._progress = (
            Progress(
                TextColumn("[bold]{task.description:<8}"), BarColumn(),
                TextColumn("{task.completed:>4.0f}/{task.total:<4.0f} {task.fields[unit]}"), MissedColumn(),
                BytesColumn(), TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn(),
                console=console, transient=False, refresh_per_second=5,
            )
            if console is not None
            else None
        )
        self._tasks: dict[str, TaskID] = {}
        self._counts: dict[str, list[int]] = {}  # row: [done, planned, missed]

    def __enter__(self) -> BackfillProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _task(self, row: str, unit: str) -> TaskID | None:
        counts = self._counts.setdefault(row, [0, 0, 0])
        if self._progress is None:
            return None
        if row not in self._tasks:
            self._tasks[row] = self._progress.add_task(row, total=counts[1], completed=counts[0], unit=unit, bytes=0,
                                                       missed=counts[2])
        return self._tasks[row]

    def plan(self, row: str, n: int, unit: str = "files") -> None:
        """``n`` more units of work on ``row`` (``archive`` or ``rest``); negative: fewer."""
        self._counts.setdefault(row, [0, 0, 0])[1] += n
        task = self._task(row, unit)
        if task is not None and self._progress is not None:
            self._progress.update(task, total=self._counts[row][1])
            self._progress.refresh()

    def done(self, row: str, n: int = 1) -> None:
        """``n`` units of ``row`` succeeded (imported, or already held)."""
        task = self._task(row, "files")
        self._counts[row][0] += n
        if task is not None and self._progress is not None:
            self._progress.update(task, advance=n)

    def missed(self, row: str, n: int = 1) -> None:
        """``n`` units of ``row`` ended without their data (failed, not published, not attempted)."""
        task = self._task(row, "files")
        self._counts[row][2] += n
        if task is not None and self._progress is not None:
            self._progress.update(task, missed=self._counts[row][2])

    def add_bytes(self, n: int) -> None:
        """``n`` bytes arrived from the archive."""
        self.bytes += n
        task = self._task("archive", "files")
        if task is not None and self._progress is not None:
            self._progress.update(task, bytes=self.bytes)

    def log(self, message: str) -> None:
        """A line above the bar (retries, bans, give-ups)."""
        if self._progress is not None:
            self._progress.console.print(message, highlight=False)

    def counts(self, row: str) -> tuple[int, int, int]:
        """(done, planned, missed) of ``row``."""
        done, total, missed = self._counts.get(row, [0, 0, 0])
        return done, total, missed
