"""``python -m tapewatch.backfill backfill …`` / ``… status``: the backfill commands on their own
(the same functions ``tapewatch backfill`` and ``tapewatch status`` run)."""

from __future__ import annotations

import typer

from tapewatch.commands.backfill import backfill_cmd, status_cmd

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
app.command("backfill")(backfill_cmd)
app.command("status")(status_cmd)

if __name__ == "__main__":
    app()
