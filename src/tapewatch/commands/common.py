"""Options and output helpers shared by every command."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape

from tapewatch.errors import TapewatchError
from tapewatch.store import DEFAULT_STORE

# stdout piped or captured: Rich would squeeze tables into $COLUMNS or 80 columns and crop numbers
# (100,888.…); a pipe has no width, so give tables room. A terminal is measured as usual.
PIPE_WIDTH = 160


def _stdout_width() -> int | None:
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return max(PIPE_WIDTH, int(columns) if columns.isdigit() else 0)


console = Console(width=_stdout_width())
# messages on stderr are never wrapped (Rich wraps at 80 columns when stderr is not a terminal):
# one error, one line, whatever the length of the path in it
err_console = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[
    Path,
    typer.Option(
        "--store",
        envvar="TAPEWATCH_STORE",
        help="Store directory (Parquet files + DuckDB). Also set by $TAPEWATCH_STORE.",
        show_default=True,
    ),
]
DEFAULT_STORE_PATH = Path(DEFAULT_STORE)
StartOpt = Annotated[str | None, typer.Option("--start", help="First time, UTC ISO-8601 (e.g. 2024-01-01), inclusive.")]
EndOpt = Annotated[str | None, typer.Option("--end", help="End time, UTC ISO-8601, exclusive.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the table to FILE.csv or FILE.parquet.")]

STORE_CONFIG = "tapewatch.toml"  # the config a store carries (`tapewatch demo` writes it)

P = ParamSpec("P")
R = TypeVar("R")


def warn(message: str) -> None:
    """One yellow ``warning:`` line on stderr (the message escaped, so brackets stay)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn TapewatchError into one red line on stderr and exit code 1, instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TapewatchError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: what was written before stays valid; re-run to continue")
            raise typer.Exit(130) from None

    return wrapper


def write_table(df: pl.DataFrame, out: Path) -> None:
    """Write ``df`` to ``out`` (.csv or .parquet); datetimes in CSV are UTC ISO-8601."""
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        df.write_csv(out, datetime_format="%Y-%m-%dT%H:%M:%S%.fZ")
    elif suffix == ".parquet":
        df.write_parquet(out)
    else:
        raise TapewatchError(f"--out must end in .csv or .parquet, got {out.name!r}")



def resolve_config(config: Path | None, store: Path) -> tuple[Path | None, str]:
    """The config file a command uses and a phrase naming it.

    Order: ``--config`` (or ``$TAPEWATCH_CONFIG``, which Typer puts in the same option), then
    ``<store>/tapewatch.toml``, then the package defaults (None).
    """
    if config is not None:
        return config, str(config)
    in_store = store / STORE_CONFIG
    if in_store.is_file():
        return in_store, f"{in_store} (the store's config)"
    return None, "defaults (tapewatch/default_config.toml)"
