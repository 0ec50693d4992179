"""Where the benchmarks find the project's full real data set.

The benchmarks run on more data than the repository carries (the tests read the trimmed copies
in ``tests/data``): the folder ``shared/data`` beside the repository, or the folder named by the
environment variable ``TAPEWATCH_SHARED_DATA``. Paths below it are the ones its PROVENANCE.md
lists (e.g. ``nautilus-samples/btc-perp-20211231-20220201_1m.csv.gz``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "TAPEWATCH_SHARED_DATA"


def shared_data(*needed: str) -> Path:
    """The data folder, once every ``needed`` file (a path relative to it) is found there.

    When one is missing, prints one line naming it (and how to point at another folder) to
    stderr and exits with status 1.
    """
    override = os.environ.get(ENV)
    root = Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data"
    for rel in needed:
        if not (root / rel).is_file():
            sys.exit(f"real data missing: {root / rel} (set {ENV} to the data folder if it is elsewhere)")
    return root


def shared_file(rel: str) -> Path:
    """One file of the data folder (see :func:`shared_data`); exits with one line when it is missing."""
    return shared_data(rel) / rel
