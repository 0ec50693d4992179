"""REST endpoints of Binance USD-M, Coinbase Exchange, Bybit v5 and OKX v5, answering from a
known truth in each exchange's real response format.

Origins of the shapes:
* Binance ``fapi/v1/exchangeInfo`` and Coinbase ``products``: the real recorded responses in
  ``tests/data/cryptofeed-recordings`` (BINANCE_FUTURES.0, COINBASE.0), served unmodified.
* Binance ``futures/data/openInterestHist`` and ``fapi/v1/fundingRate``, Coinbase candles
  (``[time, low, high, open, close, volume]``, newest first, at most 300, no row for an
  interval without trades), Bybit ``v5/market/instruments-info`` / ``open-interest`` /
  ``funding/history`` and OKX ``public/instruments`` / ``rubik/stat/contracts/open-interest-history``
  / ``public/funding-rate-history``: the documented shapes (exchange API docs, and the response
  comments in ccxt's exchange sources; the Coinbase candle row matches ccxt's recorded
  ``ts/src/test/static/response/coinbaseexchange.json`` fetchOHLCV response).

Each handler also enforces the venue's documented limits (Coinbase's 300 candles per request,
Binance's 500 OI rows and 30-day OI history, page sizes), answering 400 like the venue would,
so a client that breaks them fails the tests.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from fakevenue.server import FakeVenue

DAY_MS = 86_400_000


def recorded_body(path: Path) -> Any:
    """The JSON body of the first ``URL -> TS: BODY`` line of a cryptofeed REST recording."""
    line = path.read_text(encoding="utf-8").splitlines()[0]
    return json.loads(line.split(": ", 1)[1])


def _window(q: Any, lo_key: str, hi_key: str, default_hi: int) -> tuple[int, int]:
    return int(q.get(lo_key, 0)), int(q.get(hi_key, default_hi))


def _iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


# -- Binance USD-M ---------------------------------------------------------------------------
def install_binance(fv: FakeVenue, recordings: Path, oi: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                    funding: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, now_ms: int = 0) -> None:
    """``oi``: (ms, sumOpenInterest, sumOpenInterestValue) every 5 min; ``funding``: (ms, rate, markPrice)."""
    info = recorded_body(recordings / "BINANCE_FUTURES.0")
    fv.route("fapi.binance.com/fapi/v1/exchangeInfo", lambda r: info)

    def open_interest_hist(r: web.Request) -> Any:
        q = r.query
        limit = int(q.get("limit", 30))
        if limit > 500:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        lo, hi = _window(q, "startTime", "endTime", now_ms)
        if lo and lo < now_ms - 30 * DAY_MS:
            return 400, {"code": -1130, "msg": "parameter 'startTime' is invalid."}
        assert oi is not None and q["symbol"] == "BTCUSDT" and q["period"] == "5m"
        t, v, val = oi
        sel = np.nonzero((t >= lo) & (t <= hi) & (t <= now_ms))[0][:limit]
        return [{"symbol": "BTCUSDT", "sumOpenInterest": f"{v[i]:.8f}", "sumOpenInterestValue": f"{val[i]:.8f}",
                 "timestamp": int(t[i])} for i in sel]

    def funding_rate(r: web.Request) -> Any:
        q = r.query
        limit = int(q.get("limit", 100))
        if limit > 1000:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        assert funding is not None and q["symbol"] == "BTCUSDT"
        lo, hi = _window(q, "startTime", "endTime", now_ms)
        t, rate, mark = funding
        sel = np.nonzero((t >= lo) & (t <= hi) & (t <= now_ms))[0][:limit]
        return [{"symbol": "BTCUSDT", "fundingTime": int(t[i]), "fundingRate": f"{rate[i]:.8f}",
                 "markPrice": f"{mark[i]:.8f}"} for i in sel]

    fv.route("fapi.binance.com/futures/data/openInterestHist", open_interest_hist)
    fv.route("fapi.binance.com/fapi/v1/fundingRate", funding_rate)


# -- Coinbase Exchange -----------------------------------------------------------------------
COINBASE_CURRENCIES = [  # documented shape of GET /currencies
    {"id": "BTC", "name": "Bitcoin", "min_size": "0.00000001", "status": "online", "message": "",
     "max_precision": "0.00000001", "convertible_to": [], "details": {"type": "crypto", "symbol": "₿",
     "network_confirmations": 2, "sort_order": 20, "crypto_address_link": "", "crypto_transaction_link": "",
     "push_payment_methods": ["crypto"], "min_withdrawal_amount": 0.0001, "max_withdrawal_amount": 2400},
     "default_network": "bitcoin", "supported_networks": []},
    {"id": "USD", "name": "United States Dollar", "min_size": "0.01", "status": "online", "message": "",
     "max_precision": "0.01", "convertible_to": ["USDC"], "details": {"type": "fiat", "symbol": "$",
     "network_confirmations": 0, "sort_order": 1, "crypto_address_link": "", "crypto_transaction_link": "",
     "push_payment_methods": [], "min_withdrawal_amount": 0, "max_withdrawal_amount": 0},
     "default_network": "", "supported_networks": []},
]


def install_coinbase(fv: FakeVenue, recordings: Path, candles: np.ndarray) -> None:
    """``candles``: rows ``[ms, open, high, low, close, volume]`` (intervals without trades absent)."""
    products = recorded_body(recordings / "COINBASE.0")
    fv.route("api.exchange.coinbase.com/products", lambda r: products)
    fv.route("api.exchange.coinbase.com/currencies", lambda r: COINBASE_CURRENCIES)

    def candles_handler(r: web.Request) -> Any:
        q = r.query
        gran = int(q["granularity"])
        lo, hi = _iso_ms(q["start"]), _iso_ms(q["end"])
        if (hi - lo) // (gran * 1000) + 1 > 300:
            return 400, {"message": "granularity too small for the requested time range. Count of aggregations "
                                    "requested exceeds 300"}
        t = candles[:, 0]
        sel = candles[(t >= lo) & (t <= hi)][::-1]  # newest first
        return [[int(c[0]) // 1000, c[3], c[2], c[1], c[4], c[5]] for c in sel]

    fv.route("api.exchange.coinbase.com/products/BTC-USD/candles", candles_handler)


# -- Bybit v5 ----------------------------------------------------------------------------------
BYBIT_BTCUSDT = {
    "symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": "BTC",
    "quoteCoin": "USDT", "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": "2",
    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
    "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
    "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                      "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "119.000", "minNotionalValue": "5"},
    "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT", "copyTrading": "both",
    "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": False, "preListingInfo": None,
}


def _bybit(result: dict[str, Any]) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1704067200000}


def install_bybit(fv: FakeVenue, oi: tuple[np.ndarray, np.ndarray], funding: tuple[np.ndarray, np.ndarray]) -> None:
    """``oi``: (ms, openInterest in BTC) every 5 min; ``funding``: (ms, rate)."""

    def instruments(r: web.Request) -> Any:
        listed = [] if r.query.get("status") == "PreLaunch" or r.query.get("cursor") else [BYBIT_BTCUSDT]
        return _bybit({"category": r.query.get("category", "linear"), "list": listed, "nextPageCursor": ""})

    def open_interest(r: web.Request) -> Any:
        q = r.query
        limit = int(q.get("limit", 50))
        if limit > 200 or q.get("intervalTime") != "5min" or q.get("category") != "linear":
            return 200, {"retCode": 10001, "retMsg": "params error", "result": {}, "retExtInfo": {}, "time": 0}
        t, v = oi
        lo, hi = _window(q, "startTime", "endTime", int(t[-1]))
        sel = np.nonzero((t >= lo) & (t <= hi))[0][::-1][:limit]
        return _bybit({"symbol": "BTCUSDT", "category": "linear", "nextPageCursor": "",
                       "list": [{"openInterest": f"{v[i]:.8f}", "timestamp": str(int(t[i]))} for i in sel]})

    def funding_history(r: web.Request) -> Any:
        q = r.query
        limit = int(q.get("limit", 200))
        if limit > 200:
            return 200, {"retCode": 10001, "retMsg": "params error", "result": {}, "retExtInfo": {}, "time": 0}
        t, rate = funding
        lo, hi = _window(q, "startTime", "endTime", int(t[-1]))
        sel = np.nonzero((t >= lo) & (t <= hi))[0][::-1][:limit]
        return _bybit({"category": "linear", "list": [
            {"symbol": "BTCUSDT", "fundingRate": f"{rate[i]:.8f}", "fundingRateTimestamp": str(int(t[i]))} for i in sel]})

    fv.route("api.bybit.com/v5/market/instruments-info", instruments)
    fv.route("api.bybit.com/v5/market/open-interest", open_interest)
    fv.route("api.bybit.com/v5/market/funding/history", funding_history)


# -- OKX v5 ------------------------------------------------------------------------------------
OKX_SWAP = {
    "alias": "", "baseCcy": "", "category": "1", "ctMult": "1", "ctType": "linear", "ctVal": "0.01", "ctValCcy": "BTC",
    "expTime": "", "instFamily": "BTC-USDT", "instId": "BTC-USDT-SWAP", "instType": "SWAP", "lever": "100",
    "listTime": "1573557408000", "lotSz": "0.01", "maxIcebergSz": "100000000.0000000000000000", "maxLmtAmt": "20000000",
    "maxLmtSz": "100000000", "maxMktAmt": "", "maxMktSz": "12000", "maxStopSz": "12000",
    "maxTriggerSz": "100000000.0000000000000000", "maxTwapSz": "100000000.0000000000000000", "minSz": "0.01",
    "optType": "", "quoteCcy": "", "settleCcy": "USDT", "state": "live", "stk": "", "tickSz": "0.1", "uly": "BTC-USDT",
    "ruleType": "normal",
}


def install_okx(fv: FakeVenue, oi: tuple[np.ndarray, np.ndarray], funding: tuple[np.ndarray, np.ndarray]) -> None:
    """``oi``: (ms, open interest in BTC) every 5 min — served as contracts (× 100), BTC and USD;
    ``funding``: (ms, rate)."""
    fv.route("www.okx.com/api/v5/public/instruments",
             lambda r: {"code": "0", "msg": "", "data": [OKX_SWAP] if r.query.get("instType") == "SWAP" else []})

    def oi_history(r: web.Request) -> Any:
        q = r.query
        limit = int(q.get("limit", 100))
        if limit > 100 or q.get("period") != "5m" or q.get("instId") != "BTC-USDT-SWAP":
            return 400, {"code": "51000", "msg": "Parameter error", "data": []}
        t, v = oi
        lo, hi = int(q.get("begin", 0)), int(q.get("end", int(t[-1]) + 1))
        sel = np.nonzero((t > lo) & (t < hi))[0][::-1][:limit]  # bounds exclusive, newest first
        return {"code": "0", "msg": "", "data": [[str(int(t[i])), f"{v[i] * 100:.2f}", f"{v[i]:.4f}",
                                                  f"{v[i] * 42000:.2f}"] for i in sel]}

    def funding_history(r: web.Request) -> Any:
        q = r.query
        limit = int(q.get("limit", 100))
        t, rate = funding
        before, after = int(q.get("before", 0)), int(q.get("after", int(t[-1]) + 1))
        sel = np.nonzero((t > before) & (t < after))[0][::-1][:limit]
        return {"code": "0", "msg": "", "data": [
            {"fundingRate": f"{rate[i]:.8f}", "fundingTime": str(int(t[i])), "instId": "BTC-USDT-SWAP",
             "instType": "SWAP", "method": "current_period", "realizedRate": f"{rate[i]:.8f}"} for i in sel]}

    fv.route("www.okx.com/api/v5/rubik/stat/contracts/open-interest-history", oi_history)
    fv.route("www.okx.com/api/v5/public/funding-rate-history", funding_history)


def now_utc_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)
