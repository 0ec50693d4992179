"""The dashboard's routes (Starlette), served by uvicorn from ``tapewatch serve``.

* ``GET /``: the page (``page.html``: selectors, verdict card, charts, event study);
* ``GET /static/plotly.min.js``: the plotly.js that ships with the plotly package (no CDN);
* ``GET /api/meta``: symbols in the store, intervals, the default interval, the config used;
* ``GET /api/verdict|market|study|sweep?symbol=BTC&interval=4h&start=…&end=…``: JSON (see
  :class:`tapewatch.serve.data.Dashboard`; ``sweep``: the sweep ``tapewatch backtest --sweep``
  saved under the store, or how to run one);
* ``GET /api/stream?…``: server-sent events; whenever the store's spot / perp partition files
  change (polled every ``poll`` seconds server-side), an ``update`` event with the latest bar,
  verdict and recent events, then a second one that adds the track records.

A bad parameter or anything the library refuses (:class:`TapewatchError`) is a 400 with one
line of text; any other failure a 500 with one line (never a traceback). With ``token`` set,
every request must carry ``?token=…`` (or ``Authorization: Bearer …``). Bound to loopback, the
``Host`` header must name loopback too (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import plotly
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tapewatch.errors import TapewatchError
from tapewatch.serve.data import INTERVALS, Dashboard

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class TokenMiddleware:
    """Refuse (403, one line) any request without the access token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            req = Request(scope)
            given = req.query_params.get("token") or req.headers.get("authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                await PlainTextResponse("forbidden: this dashboard needs ?token=… (printed by tapewatch serve)",
                                        status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(store: Path, config: Path | None = None, token: str | None = None, loopback: bool = True,
               poll: float = 0.25) -> Starlette:
    """The ASGI app over ``store`` (``config`` as ``--config``; ``poll``: seconds between store checks)."""
    dash = Dashboard(store, config)
    page = (resources.files("tapewatch.serve") / "page.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        suffix = f"?token={html.escape(quote(token, safe=''))}" if token else ""
        return HTMLResponse(page.replace("{{PLOTLY_SRC}}", f"/static/plotly.min.js{suffix}"))

    async def plotly_js(request: Request) -> Response:
        return FileResponse(PLOTLY_JS, media_type="application/javascript",
                            headers={"Cache-Control": "max-age=86400"})

    async def meta(request: Request) -> Response:
        cfg, _ = dash.config()
        return JSONResponse({"symbols": list(dash.symbols()), "intervals": list(INTERVALS),
                             "interval": cfg.interval, "config": dash.config_source})

    def api(what: str) -> Route:
        async def endpoint(request: Request) -> Response:  # cached: answered on the event loop
            view = dash.view(request.query_params)
            body = dash.cached_json(what, view) or await run_in_threadpool(dash.json, what, view)
            return Response(body, media_type="application/json")
        return Route(f"/api/{what}", endpoint)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def watch() -> None:  # the store stamp, re-read off the event loop
            while True:
                await run_in_threadpool(dash.stamp, True)
                await asyncio.sleep(poll)

        task = asyncio.create_task(watch())
        try:
            yield
        finally:
            task.cancel()

    async def stream(request: Request) -> Response:
        view = await run_in_threadpool(dash.view, request.query_params)

        async def events() -> AsyncIterator[str]:
            seen = dash.stamp()
            yield f"event: ready\ndata: {json.dumps(list(seen))}\n\n"
            idle = 0.0
            while not await request.is_disconnected():
                await asyncio.sleep(poll)
                now = dash.stamp()
                if now != seen:
                    seen = now
                    for records in (False, True):  # the bar at once, then with the track records
                        try:
                            payload: Any = await run_in_threadpool(dash.live, view, records)
                        except TapewatchError as exc:
                            payload = {"error": _one_line(exc)}
                        yield f"event: update\ndata: {json.dumps(payload, default=str)}\n\n"
                    idle = 0.0
                else:
                    idle += poll
                    if idle >= 15:  # keep proxies and the browser from timing the stream out
                        yield ": keep-alive\n\n"
                        idle = 0.0

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def bad_request(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(_one_line(exc), status_code=400)

    async def failed(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"internal error ({type(exc).__name__}): {_one_line(exc)}", status_code=500)

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS))] if loopback else []
    if token:
        middleware.append(Middleware(TokenMiddleware, token=token))
    routes = [
        Route("/", index), Route("/static/plotly.min.js", plotly_js), Route("/api/meta", meta),
        api("verdict"), api("market"), api("study"), api("sweep"),
        Route("/api/stream", stream), Route("/favicon.ico", lambda request: Response(status_code=204)),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={TapewatchError: bad_request, Exception: failed})
