"""The factors, one module each; every column is defined in exactly one of them.

- ``price.py``   — ``close``, ``price_change_pct`` (used by flow and oi)
- ``flow.py``    — spot / perp taker flow and CVD; *spot selling into a rally* (mirror: buying into a decline)
- ``premium.py`` — premium gap / index between two venues, z-score, percentile rank; *negative premium*
- ``book.py``    — bid / ask depth delta and ratio per band; *ask-heavy book*
- ``oi.py``      — open interest and its change; *OI rising into a dip*
- ``funding.py`` — funding rate (context only)

Each module ends with its declaration, a ``SPEC`` (``spec.py``: inputs, windows, outputs,
conditions, report panel); ``registry.py`` lists them in computation order and is what the rest
reads. ``frame.py`` puts the declared inputs (``inputs.py``) on one bar grid (no look-ahead) with
the warm-up the windows need, ``compute.py`` runs the factors and the detector over it. Timestamps: a row stamped ``ts`` (the bar's open time, UTC)
uses only data up to the bar's close ``ts + interval``.
"""
