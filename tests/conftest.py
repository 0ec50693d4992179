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

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not SHARED.is_dir():  # the repository checked out elsewhere: look beside the working directory
    SHARED = Path.cwd().parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_network() -> object:
    """No test reaches the internet: any connect to a non-loopback address fails the test."""
    from fakevenue import netguard

    netguard.install()
    yield
    netguard.uninstall()


@pytest.fixture
def shared() -> Path:
    """The real recorded exchange data in ../shared/data (see its PROVENANCE.md)."""
    assert SHARED.is_dir(), f"real data not found at {SHARED}"
    return SHARED


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")
