"""(being written)"""

from __future__ import annotations

from tapewatch.sources.base import Format

FORMATS: list[Format] = []
