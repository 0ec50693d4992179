"""Venue symbols to unified ccxt-style symbols (``BTCUSDT`` → ``BTC/USDT``, ``BTC-USD`` → ``BTC/USD``)."""

from __future__ import annotations

from tapewatch.errors import TapewatchError

# Quote assets, longest first so that e.g. FDUSD wins over USD.
QUOTES = (
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "TRY", "EUR", "GBP", "AUD", "BRL",
    "RUB", "UAH", "BIDR", "IDRT", "NGN", "ZAR", "JPY", "USD", "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE",
)
MARKETS = ("spot", "perp", "future")


def unify(native: str) -> str:
    """Unified ``BASE/QUOTE`` symbol from a venue's native spelling.

    Accepts ``BTCUSDT`` (Binance), ``BTC-USD`` (Coinbase), ``BTC/USDT`` (already unified) and
    Binance's lower-case stream names. Raises TapewatchError when no quote asset is recognised.
    """
    s = native.strip().upper()
    if "/" in s:
        return s.split(":")[0]
    if "-" in s:
        base, _, quote = s.partition("-")
        return f"{base}/{quote}"
    for q in QUOTES:
        if s.endswith(q) and len(s) > len(q):
            return f"{s[: -len(q)]}/{q}"
    raise TapewatchError(f"cannot tell base and quote of symbol {native!r}; pass it as BASE/QUOTE")


def native_symbol(symbol: str) -> str:
    """Binance's spelling of a unified symbol: ``BTC/USDT`` → ``BTCUSDT`` (a ``:SETTLE`` suffix
    dropped); the inverse of :func:`unify` for Binance."""
    return symbol.split(":")[0].replace("/", "").replace("-", "").upper()


def check_market(market: str) -> str:
    """Validate a market name (spot, perp or future)."""
    if market not in MARKETS:
        raise TapewatchError(f"unknown market {market!r}; use one of {', '.join(MARKETS)}")
    return market


def path_token(symbol: str) -> str:
    """Symbol as it appears in a store path (``BTC/USDT`` → ``BTC-USDT``)."""
    return symbol.replace("/", "-").replace(":", "_")
