"""The exception tree of pypidl.

Every error a user can cause (bad input, an unreachable index, a broken manifest) is a
:class:`PypidlError`.  The CLI turns it into one line, plus its hint, and an exit code; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "EXIT_BUG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "BadInputError",
    "ManifestError",
    "ProblemsError",
    "PypidlError",
    "RemoteIndexError",
    "RequirementsError",
    "ResolutionError",
    "TargetError",
    "UnsafeFilenameError",
]

# The exit codes of every command, here because each error class names its own.
EXIT_OK = 0  #: everything asked for is done
EXIT_FAILED = 1  #: some files or projects failed; the rest is done
EXIT_USAGE = 2  #: bad input: flags, requirements, targets, manifest
EXIT_BUG = 3  #: an unexpected error inside pypidl (a traceback is printed)
EXIT_INTERRUPTED = 130  #: Ctrl-C or SIGTERM


class PypidlError(Exception):
    """Root of every error pypidl reports to a user.

    :param message: what went wrong, one line.
    :param context: where: a file and line, a URL, a project.
    :param hint: what the user can do about it.
    """

    #: process exit code the CLI uses for this kind of error
    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, context: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.context = context
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.context}: {self.message}" if self.context else self.message

    def __reduce__(self):  # type: ignore[no-untyped-def]  # keyword-only args must survive pickling
        return (_rebuild, (type(self), self.message, self.context, self.hint))


def _rebuild(
    cls: type[PypidlError], message: str, context: str | None, hint: str | None
) -> PypidlError:
    err = cls.__new__(cls)
    PypidlError.__init__(err, message, context=context, hint=hint)
    return err


class BadInputError(PypidlError, ValueError):
    """Input the user gave is malformed: exit code 2."""

    exit_code = EXIT_USAGE


class RequirementsError(BadInputError):
    """A requirements file cannot be used; ``context`` is ``file:line``."""


class TargetError(BadInputError):
    """A target Python version, platform, ABI or implementation cannot be understood."""


class ProblemsError(BadInputError):
    """Bad input with several problems: ``problems`` holds every one found, not only the first.

    The message is the first problem and how many more there are; the CLI lists the rest.
    """

    #: what the user can do when the input is refused as a whole (subclasses say)
    default_hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        context: str | None = None,
        hint: str | None = None,
        problems: Sequence[str] = (),
    ):
        super().__init__(message, context=context, hint=hint)
        self.problems = list(problems)

    @classmethod
    def collect(cls, where: str, problems: Iterable[str]) -> ProblemsError:
        found = list(problems)
        first = found[0] if found else "invalid input"
        more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        return cls(first + more, context=where, hint=cls.default_hint, problems=found)


class ManifestError(ProblemsError):
    """A manifest cannot be loaded."""


class UnsafeFilenameError(BadInputError):
    """A filename from an index or a manifest would land outside the download directory."""


class ResolutionError(PypidlError):
    """The requirements could not be resolved (pip-compile or the target resolver failed)."""

    exit_code = EXIT_USAGE


class RemoteIndexError(PypidlError):
    """A package index could not be read, or served something unusable (a page, metadata)."""
