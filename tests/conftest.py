"""Shared fixtures: paths of the real data and a fresh store per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# CI must never flake: property tests draw the same examples on every run (derandomized), and a
# slow shared machine is no reason to fail one (no per-example deadline).
settings.register_profile("tapewatch", derandomize=True, deadline=None)
settings.load_profile("tapewatch")

from tapewatch.store import Store

# The real data the tests read, committed with the repository: tests/data mirrors the layout of the
# project's full data set (same relative paths) and holds only what the tests need; its
# PROVENANCE.md says where each file came from and how it was trimmed.
SHARED = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _no_network() -> object:
    """No test reaches the internet: any connect to a non-loopback address fails the test."""
    from fakevenue import netguard

    netguard.install()
    yield
    netguard.uninstall()


@pytest.fixture
def shared() -> Path:
    """The real recorded exchange data committed in tests/data (see its PROVENANCE.md)."""
    return SHARED


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")
