"""Reading a TOML file given by the user, with one clear line when it cannot be read or parsed."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from tapewatch.errors import TapewatchError


def read_toml(
    path: Path,
    what: str,
    error: type[TapewatchError] = TapewatchError,
    invalid: str = ": invalid TOML",
) -> dict[str, Any]:
    """The parsed TOML file at ``path``.

    ``what`` names the file in messages (``"config file"``, ``"grid file"``). An unreadable file
    raises ``error("cannot read <what> <path>: <reason>")``, a file that is not TOML
    ``error("<what> <path><invalid>: <parser message>")``.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path}{invalid}: {exc}") from exc
