"""numba when it is there, plain Python when it is not (or when ``TAPEWATCH_NO_NUMBA=1``).

The book kernels are written in the subset of Python that numba compiles (numpy arrays, ints,
floats, a typed dict for the few levels outside the dense window). Without numba the very same
functions run as ordinary Python: correct, about a hundred times slower. That fallback exists for
platforms without a numba wheel and for debugging; the tests run both.
"""

from __future__ import annotations

import os

NUMBA = os.environ.get("TAPEWATCH_NO_NUMBA", "") in ("", "0")
if NUMBA:
    try:
        import numba
        from numba import types as _types
        from numba.typed import Dict as _Dict
    except ImportError:  # pragma: no cover - numba is a dependency; this is the escape hatch
        NUMBA = False


def _drop_stale_cache() -> None:
    """numba's on-disk cache is keyed on each function's own file, but a kernel compiled in one
    module inlines the kernels of the others: after an edit to one file, another file's cached
    machine code may still hold the old version. So the cache of this package is thrown away as a
    whole whenever any of its sources changes (a hash of them is kept beside the cache)."""
    import glob
    import hashlib

    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(here, "*.py"))):
        with open(path, "rb") as fh:
            digest.update(fh.read())
    cache = os.path.join(here, "__pycache__")
    stamp = os.path.join(cache, "numba-sources.sha256")
    try:
        with open(stamp) as fh:
            if fh.read() == digest.hexdigest():
                return
    except OSError:
        pass
    try:
        os.makedirs(cache, exist_ok=True)
        for f in glob.glob(os.path.join(cache, "*.nbi")) + glob.glob(os.path.join(cache, "*.nbc")):
            os.remove(f)
        with open(stamp, "w") as fh:
            fh.write(digest.hexdigest())
    except OSError:  # a read-only install: numba then compiles in memory, also correct
        pass


if NUMBA:
    _drop_stale_cache()


def njit(fn=None, **kwargs):
    """``numba.njit(cache=True, nogil=True)`` or the identity when numba is off."""
    if not NUMBA:
        return fn if fn is not None else (lambda f: f)
    opts = {"cache": True, "nogil": True, "boundscheck": False, **kwargs}
    if fn is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(fn)


def level_dict():
    """An empty int64 → float64 map (tick → size) usable inside the kernels."""
    if NUMBA:
        return _Dict.empty(key_type=_types.int64, value_type=_types.float64)
    return {}
