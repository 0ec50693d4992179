"""The ``tapewatch`` command: one Typer app assembled from tapewatch.commands."""

from __future__ import annotations

import typer

from tapewatch.commands import alerts, backfill, data, demo, live, replay, serve, signals, study

app = typer.Typer(
    name="tapewatch",
    help="Read crypto market structure (taker flow, premium, book depth, OI) and test exit-pump calls with data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: "[grid] key = [values]" keeps its brackets
)
app.command("import")(data.import_cmd)
app.command("bars")(data.bars_cmd)
app.command("status")(backfill.status_cmd)
app.command("backfill")(backfill.backfill_cmd)
app.command("signals")(signals.signals_cmd)
app.command("scan")(signals.scan_cmd)
app.command("alerts")(alerts.alerts_cmd)
app.command("backtest")(study.backtest_cmd)
app.command("report")(study.report_cmd)
app.command("demo")(demo.demo_cmd)
app.command("serve")(serve.serve_cmd)
app.command("live")(live.live_cmd)
app.command("replay-exchange")(replay.replay_exchange_cmd)

if __name__ == "__main__":  # pragma: no cover
    app()
