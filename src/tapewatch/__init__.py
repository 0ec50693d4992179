"""tapewatch: crypto market structure and an honest exit-pump / accumulation detector.

Notebook entry point::

    import tapewatch
    store = tapewatch.open_store("./tapewatch-data")
    bars = store.bars("binance", "spot", "BTC/USDT", "5m")   # Polars DataFrame; .to_pandas() for pandas
"""

from tapewatch.store import Store, open_store

__all__ = ["Store", "open_store"]
__version__ = "0.1.0"
