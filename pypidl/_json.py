"""Reading JSON that someone else wrote: a manifest, a bundle header, an index page.

:func:`json.loads` turns two kinds of hostile input into errors that are not
:class:`json.JSONDecodeError`: nesting deep enough to exhaust the interpreter's stack
(:class:`RecursionError`) and integers longer than Python converts (a :class:`ValueError` since
the integer-string limit of CPython 3.11 and the security releases before it).  Callers that
catch only the decode error crash on them; :func:`loads` reports all three the same way.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["UntrustedJSONError", "loads"]


class UntrustedJSONError(ValueError):
    """The text is not JSON pypidl will read; ``str()`` says why in one line."""


def loads(text: str | bytes) -> Any:
    """Parse ``text`` as JSON.

    :raises UntrustedJSONError: for malformed JSON (with line and column), nesting too deep for
        the parser, and numbers too long to convert.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UntrustedJSONError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError as exc:
        raise UntrustedJSONError(f"not valid JSON: not UTF-8 text ({exc.reason})") from None
    except RecursionError:
        raise UntrustedJSONError("not usable JSON: arrays or objects nested too deeply") from None
    except ValueError:  # int("9" * 5000): "Exceeds the limit (4300 digits) ..."
        raise UntrustedJSONError("not usable JSON: a number too long to read") from None
