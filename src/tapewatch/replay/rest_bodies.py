"""The replay exchange's recorded Binance USD-M REST bodies: ``GET {base}/fapi/v1/openInterest`` and
``GET {base}/fapi/v1/fundingRate``, each ``?symbol=BTCUSDT``.

Answers with the recorded bodies of that kind and symbol (saved bodies, one JSON document a
line: :attr:`Timeline.rest_bodies`), exactly as recorded: one per request in recorded order, the
last one again once they are used up (the real endpoints answer every poll; other query
parameters, such as ``limit``, are not applied). Errors as Binance gives them: 400 ``-1102``
without ``symbol``, 400 ``-1121`` for a symbol with no recorded body; the injected 429 / 418
faults come first (``refuse``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

REST_PATHS = {"openInterest": "/fapi/v1/openInterest", "fundingRate": "/fapi/v1/fundingRate"}  # body kind -> path


def rest_body_handler(bodies: dict[str, list[str]], refuse: Callable[[], web.Response | None]
                      ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The route handler serving ``bodies`` (native symbol -> recorded bodies); ``refuse`` counts
    the REST request and returns the injected fault's answer, if any."""
    served: dict[str, int] = {}

    async def handler(request: web.Request) -> web.Response:
        refused = refuse()
        if refused is not None:
            return refused
        symbol = request.query.get("symbol", "").upper()
        if not symbol:
            msg = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            return web.json_response({"code": -1102, "msg": msg}, status=400)
        if symbol not in bodies:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        n = served[symbol] = served.get(symbol, -1) + 1
        return web.Response(text=bodies[symbol][min(n, len(bodies[symbol]) - 1)], content_type="application/json")

    return handler
