"""The replay exchange's recorded REST bodies: Binance USD-M ``GET {base}/fapi/v1/openInterest`` and
``GET {base}/fapi/v1/fundingRate`` (each ``?symbol=BTCUSDT``), Bybit
``GET {base}/v5/market/open-interest?symbol=BTCUSDT`` and OKX
``GET {base}/api/v5/public/open-interest?instId=BTC-USDT-SWAP``.

Answers with the recorded bodies of that route and symbol (saved bodies, one JSON document a
line: :attr:`Timeline.bodies`), exactly as recorded: one per
request in recorded order, the last one again once they are used up (the real endpoints answer
every poll; other query parameters, such as ``limit`` or ``category``, are not applied). Errors
as each venue gives them: Binance 400 ``-1102`` without ``symbol``, 400 ``-1121`` for a symbol
with no recorded body; Bybit HTTP 200 with ``retCode`` 10001 and OKX HTTP 200 with ``code``
50014 (missing) / 51001 (unknown instrument). The injected 429 / 418 faults come first
(``refuse``), in Binance's shape for every venue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from tapewatch.sources import binance_api, bybit, okx

ErrorAnswer = Callable[[str | None], web.Response]  # the answer to a missing (None) or unknown symbol


def binance_error(symbol: str | None) -> web.Response:
    """Binance's answer to a missing or unknown ``symbol``."""
    if symbol is None:
        msg = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        return web.json_response({"code": -1102, "msg": msg}, status=400)
    return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)


def bybit_error(symbol: str | None) -> web.Response:
    """Bybit's answer (HTTP 200, ``retCode`` 10001) to a missing or unknown ``symbol``."""
    why = "symbol is required" if symbol is None else "Symbol Invalid"
    return web.json_response({"retCode": 10001, "retMsg": f"params error: {why}", "result": {}, "retExtInfo": {}})


def okx_error(symbol: str | None) -> web.Response:
    """OKX's answer (HTTP 200, ``code`` 50014 / 51001) to a missing or unknown ``instId``."""
    if symbol is None:
        return web.json_response({"code": "50014", "msg": "Parameter instId can not be empty.", "data": []})
    return web.json_response({"code": "51001", "msg": "Instrument ID does not exist", "data": []})


BODY_ANSWERS: dict[str, tuple[str, ErrorAnswer]] = {  # exchange -> (symbol query parameter, symbol error)
    binance_api.EXCHANGE: ("symbol", binance_error),
    bybit.EXCHANGE: (bybit.SYMBOL_PARAM, bybit_error),
    okx.EXCHANGE: (okx.SYMBOL_PARAM, okx_error),
}


def rest_body_handler(bodies: dict[str, list[str]], refuse: Callable[[], web.Response | None],
                      symbol_param: str = "symbol", error: ErrorAnswer = binance_error,
                      ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The route handler serving ``bodies`` (native symbol -> recorded bodies) for the symbol in
    the query parameter ``symbol_param``; ``refuse`` counts the REST request and returns the
    injected fault's answer, if any; ``error`` answers a missing or unknown symbol."""
    served: dict[str, int] = {}

    async def handler(request: web.Request) -> web.Response:
        refused = refuse()
        if refused is not None:
            return refused
        symbol = request.query.get(symbol_param, "").upper()
        if not symbol:
            return error(None)
        if symbol not in bodies:
            return error(symbol)
        n = served[symbol] = served.get(symbol, -1) + 1
        return web.Response(text=bodies[symbol][min(n, len(bodies[symbol]) - 1)], content_type="application/json")

    return handler
