"""The L2 order-book engine: books from snapshots and diffs, sampled into depth bands.

* :mod:`tapewatch.book.rules` — each venue's sync rules (Binance spot, Binance USD-M, Coinbase,
  Tardis), from their documentation;
* :mod:`tapewatch.book.core` — the array book (dense size-per-tick window + overflow), numba;
* :mod:`tapewatch.book.bands` — depth within p % of mid or of the touch, delta and ratio;
* :mod:`tapewatch.book.sampling` — the time grid and the ``book_depth`` / ``quote`` rows;
* :mod:`tapewatch.book.validate` — row checks, tick grid, message boundaries;
* :mod:`tapewatch.book.engine` — :class:`BookEngine`, tying them together.
"""

from tapewatch.book.bands import DEFAULT_BANDS, REFERENCES, delta_expr, ratio_expr, with_delta_ratio
from tapewatch.book.engine import BookEngine, BookResult, BookStats, build_book_depth
from tapewatch.book.rules import RULES, rule_for
from tapewatch.book.validate import REASONS, BookDataError

__all__ = [
    "DEFAULT_BANDS", "REFERENCES", "RULES", "REASONS", "BookDataError", "BookEngine", "BookResult",
    "BookStats", "build_book_depth", "delta_expr", "ratio_expr", "rule_for", "with_delta_ratio",
]
