"""``tapewatch serve``: the local web dashboard over the store (see tapewatch.serve)."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tapewatch.commands.common import DEFAULT_STORE_PATH, StoreOpt, console, err_console, friendly
from tapewatch.commands.signals import ConfigOpt
from tapewatch.errors import TapewatchError


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@friendly
def serve_cmd(
    store: StoreOpt = DEFAULT_STORE_PATH,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8050,
    host: Annotated[str, typer.Option("--host", help="Address to bind; loopback unless --allow-remote.")] = "127.0.0.1",
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote", help="Allow a non-loopback --host (anyone who can reach it sees the store).")] = False,
    token: Annotated[str | None, typer.Option(
        "--token", help="Access token every request must carry (?token=…); 'auto' makes one.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Local web dashboard: the verdict card, linked charts, the event study, live updates.

    Binds 127.0.0.1 by default. Reads the store's Parquet files only, so `tapewatch live` can
    keep writing; a new bar appears in the open page within about a second.
    """
    import uvicorn

    from tapewatch.serve.app import create_app

    if not Path(store).is_dir():
        raise TapewatchError(f"--store {store}: no such directory; run `tapewatch demo` or import data first")
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise TapewatchError(f"--host {host} is not a loopback address: add --allow-remote (and --token) to expose "
                             "the dashboard beyond this machine")
    if token == "auto":
        token = secrets.token_urlsafe(16)
    if not loopback:
        err_console.print(f"[bold yellow]warning:[/] serving on {escape(host)}: anyone who can reach this address "
                          + ("and has the token " if token else "")
                          + "can read the store" + ("" if token else "; consider --token auto"), highlight=False)
    app = create_app(Path(store), config, token, loopback)
    shown = f"[{host}]" if ":" in host else host
    suffix = f"/?token={token}" if token else "/"
    console.print(f"tapewatch dashboard on http://{escape(shown)}:{port}{escape(suffix)} (store {escape(str(store))}); "
                  "Ctrl+C stops", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")
