"""Reading TOML that someone else wrote: a lock, an sdist's ``pyproject.toml``.

Like :mod:`pypidl._json`: :mod:`tomllib` turns hostile input into errors that are not
:class:`tomllib.TOMLDecodeError`: nesting deep enough to exhaust the interpreter's stack
(100,000 ``[`` or 3,000 nested inline tables: :class:`RecursionError`) and integers longer than
Python converts (a plain :class:`ValueError`).  :func:`loads` reports all three the same way.
"""

from __future__ import annotations

import re
from typing import Any

# tomli, not the standard library's tomllib: the same parser, but its wheels are compiled, about
# 3x faster on a big lock (issue 20)
import tomli as tomllib

__all__ = ["UntrustedTOMLError", "loads"]

_AT = re.compile(r"\s*\(at line (\d+), column \d+\)")


class UntrustedTOMLError(ValueError):
    """The text is not TOML pypidl will read; ``str()`` says why in one line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        #: the line tomllib names, when it names one
        self.line = line


def loads(text: str) -> dict[str, Any]:
    """Parse ``text`` as TOML.

    :raises UntrustedTOMLError: for malformed TOML (with its line), nesting too deep for the
        parser, and numbers too long to convert.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _AT.search(str(exc))
        raise UntrustedTOMLError(
            f"not valid TOML: {_AT.sub('', str(exc)).strip()}",
            int(found.group(1)) if found else None,
        ) from None
    except RecursionError:
        raise UntrustedTOMLError("not usable TOML: arrays or tables nested too deeply") from None
    except ValueError:  # int("9" * 5000): "Exceeds the limit (4300 digits) ..."
        raise UntrustedTOMLError("not usable TOML: a number too long to read") from None
