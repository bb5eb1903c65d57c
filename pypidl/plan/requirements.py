"""Reading requirements files in pip's format.

pypidl accepts the subset of pip's requirements-file syntax that names projects on a package
index, because that is all a mirror can hold:

* one requirement per line (``name[extras] specifier ; marker``), full-line comments and trailing
  comments (a ``#`` at the start of a line or preceded by whitespace; a ``#`` inside a URL is
  kept), blank lines, and backslash continuations.  As in pip, continuations are joined *before*
  comments are stripped, and a requirement's source line is the line it starts on;
* ``${NAME}`` environment variables (``NAME`` of upper-case letters, digits and ``_``; unset or
  empty variables are left as written, as pip does);
* ``-r``/``--requirement`` includes and ``-c``/``--constraint`` files, relative to the directory
  of the file that names them (``file:`` URLs are accepted, other URLs are not).  Everything read
  through a constraints file is a constraint;
* per-requirement ``--hash=algo:hex`` options with a strong algorithm (sha256, sha384, sha512);
* ``-i``/``--index-url`` (the last one wins) and ``--extra-index-url``, which are recorded for
  the caller (credentials included: redact before logging);
* options that only steer pip's installer and mean nothing for a mirror are accepted and ignored
  with a debug log: ``--pre``, ``--prefer-binary``, ``--only-binary``, ``--no-binary``,
  ``-f``/``--find-links``, ``--trusted-host``, ``--use-feature``, ``--require-hashes`` and the
  per-requirement ``--config-settings``/``--global-option``.

Everything else is a :class:`~pypidl.errors.RequirementsError` whose ``context`` is ``file:line``:
editable, VCS, local-path and direct-URL requirements (a mirror serves index projects only),
``--no-index`` (pypidl needs an index to mirror from), unknown options, malformed requirements,
include cycles, and files that are missing or not text.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit
from urllib.request import url2pathname

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from pypidl._fs import read_input
from pypidl.errors import RequirementsError
from pypidl.plan._requirement_line import INDEX_ONLY_HINT, check_hash, index_requirement, redact
from pypidl.sources import check_index_url

__all__ = [
    "ParsedRequirement",
    "RequirementSet",
    "parse_requirement_files",
    "parse_requirement_lines",
]

log = logging.getLogger(__name__)

# pip's own patterns, written from its documentation: a comment starts at a "#" that begins the
# line or follows whitespace; ${NAME} is expanded only for upper-case, digit and "_" names.
_COMMENT_RE = re.compile(r"(^|\s+)#.*$")
_ENV_VAR_RE = re.compile(r"\$\{([A-Z0-9_]+)\}")
_CODING_RE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_OPTION_START_RE = re.compile(r"\s-")
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
_URL_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class ParsedRequirement:
    """One requirement line of a requirements or constraints file."""

    requirement: Requirement
    #: ``requirement.name``, normalized (PEP 503) here and nowhere later
    name: NormalizedName
    #: ``file:line`` where the requirement starts
    source: str
    #: digests from ``--hash`` options, as ``"algo:hex"`` with lower-case hex
    hashes: tuple[str, ...] = ()

    def line(self) -> str:
        """The requirement as normalized text (``name[extras]specifier; marker``), no options."""
        return str(self.requirement)


@dataclass(frozen=True)
class RequirementSet:
    """Everything read from one or more requirements files."""

    #: in file order, with ``-r`` includes expanded in place
    requirements: tuple[ParsedRequirement, ...]
    #: from ``-c`` files (and anything those include)
    constraints: tuple[ParsedRequirement, ...]
    #: the last ``-i``/``--index-url`` seen, credentials kept
    index_url: str | None
    #: every ``--extra-index-url``, first occurrence order, credentials kept
    extra_index_urls: tuple[str, ...]
    #: every file read, in the order it was first opened
    files: tuple[str, ...]

    def names(self) -> list[NormalizedName]:
        """Normalized names of the requirements (not constraints), first occurrence order."""
        return list(dict.fromkeys(req.name for req in self.requirements))

    def constraints_text(self) -> str:
        """The constraints, one normalized line each, for a file pip-compile reads with ``-c``."""
        return "".join(f"{req.line()}\n" for req in self.constraints)


def parse_requirement_files(paths: Sequence[str | os.PathLike[str]]) -> RequirementSet:
    """Read requirements files in pip's format, following ``-r`` and ``-c`` options.

    :param paths: top-level files; relative includes resolve against each including file's
        directory.
    :raises RequirementsError: for anything pypidl cannot mirror or does not understand; its
        ``context`` is ``file:line`` (or the path, for a top-level file that cannot be read).
    """
    parser = _Parser(os.environ)
    for path in paths:
        parser.parse_file(os.fspath(path), constraint=False, included_from=None)
    return parser.result()


def parse_requirement_lines(text: str, *, source: str = "<string>") -> RequirementSet:
    """Parse requirements given as text (for example, read from standard input).

    :param source: the name used in ``file:line`` contexts; relative includes resolve against its
        directory (the current directory for the default).
    :raises RequirementsError: as :func:`parse_requirement_files` does.
    """
    parser = _Parser(os.environ)
    parser.parse_text(text.lstrip("\ufeff"), source, constraint=False, stack=())
    return parser.result()


class _Option(NamedTuple):
    long: str
    takes_value: bool
    per_requirement: bool


_OPTIONS: dict[str, _Option] = {
    opt.long: opt
    for opt in (
        _Option("--requirement", takes_value=True, per_requirement=False),
        _Option("--constraint", takes_value=True, per_requirement=False),
        _Option("--editable", takes_value=True, per_requirement=False),
        _Option("--index-url", takes_value=True, per_requirement=False),
        _Option("--extra-index-url", takes_value=True, per_requirement=False),
        _Option("--no-index", takes_value=False, per_requirement=False),
        _Option("--find-links", takes_value=True, per_requirement=False),
        _Option("--trusted-host", takes_value=True, per_requirement=False),
        _Option("--pre", takes_value=False, per_requirement=False),
        _Option("--prefer-binary", takes_value=False, per_requirement=False),
        _Option("--only-binary", takes_value=True, per_requirement=False),
        _Option("--no-binary", takes_value=True, per_requirement=False),
        _Option("--require-hashes", takes_value=False, per_requirement=False),
        _Option("--use-feature", takes_value=True, per_requirement=False),
        _Option("--hash", takes_value=True, per_requirement=True),
        _Option("--config-settings", takes_value=True, per_requirement=True),
        _Option("--global-option", takes_value=True, per_requirement=True),
    )
}
_SHORT_OPTIONS = {
    "-r": "--requirement",
    "-c": "--constraint",
    "-e": "--editable",
    "-i": "--index-url",
    "-f": "--find-links",
    "-C": "--config-settings",
}
_IGNORED = frozenset(
    {
        "--find-links",
        "--trusted-host",
        "--pre",
        "--prefer-binary",
        "--only-binary",
        "--no-binary",
        "--require-hashes",
        "--use-feature",
        "--config-settings",
        "--global-option",
    }
)
_SUPPORTED_TEXT = "-r/--requirement, -c/--constraint, -i/--index-url, --extra-index-url, --hash"


class _Logical(NamedTuple):
    lineno: int
    text: str


class _Parser:
    """Accumulates what a set of files says; one instance per public call."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._requirements: list[ParsedRequirement] = []
        self._constraints: list[ParsedRequirement] = []
        self._index_url: str | None = None
        self._extra_index_urls: list[str] = []
        self._files: list[str] = []
        self._cache: dict[str, str] = {}

    def result(self) -> RequirementSet:
        return RequirementSet(
            requirements=tuple(self._requirements),
            constraints=tuple(self._constraints),
            index_url=self._index_url,
            extra_index_urls=tuple(dict.fromkeys(self._extra_index_urls)),
            files=tuple(dict.fromkeys(self._files)),
        )

    # -- files ---------------------------------------------------------------------------------

    def parse_file(
        self,
        path: str,
        *,
        constraint: bool,
        included_from: str | None,
        stack: tuple[str, ...] = (),
    ) -> None:
        key = os.path.realpath(path)
        if key in stack:
            cycle = " -> ".join(_short(p) for p in (*stack[stack.index(key) :], key))
            raise RequirementsError(
                f"{path} includes itself: {cycle}",
                context=included_from,
                hint="remove the -r/-c option that closes the cycle",
            )
        text = self._read(path, key, included_from)
        self._files.append(path)
        log.debug("reading %s %s", "constraints" if constraint else "requirements", path)
        self.parse_text(text, path, constraint=constraint, stack=(*stack, key))

    def _read(self, path: str, key: str, included_from: str | None) -> str:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        context = included_from or path
        try:
            data = read_input(path)
        except FileNotFoundError:
            raise RequirementsError(
                f"requirements file not found: {path}",
                context=context,
                hint="check the path; -r and -c paths are relative to the file that names them",
            ) from None
        except IsADirectoryError:
            raise RequirementsError(
                f"{path} is a directory, not a requirements file", context=context
            ) from None
        except OSError as exc:
            raise RequirementsError(
                f"cannot read requirements file {path}: {exc.strerror or exc}", context=context
            ) from None
        text = _decode(data, path)
        if text.startswith("\ufeff"):  # a BOM written inside the encoded text
            text = text[1:]
        self._cache[key] = text
        return text

    # -- lines ---------------------------------------------------------------------------------

    def parse_text(
        self, text: str, source: str, *, constraint: bool, stack: tuple[str, ...]
    ) -> None:
        for logical in _logical_lines(text):
            line = _COMMENT_RE.sub("", logical.text)
            line = self._expand(line).strip()
            if line:
                self._parse_line(
                    line, f"{source}:{logical.lineno}", source, constraint=constraint, stack=stack
                )

    def _expand(self, line: str) -> str:
        def replace(match: re.Match[str]) -> str:
            value = self._environ.get(match.group(1))
            if not value:
                log.debug("environment variable %s is not set; keeping %s", *match.group(1, 0))
                return match.group(0)
            return value

        return _ENV_VAR_RE.sub(replace, line)

    def _parse_line(
        self, line: str, where: str, source: str, *, constraint: bool, stack: tuple[str, ...]
    ) -> None:
        if line.startswith("-"):
            for name, value in _parse_options(line, where):
                self._file_option(name, value, where, source, constraint=constraint, stack=stack)
            return
        req_text, options_text = _split_requirement(line)
        hashes: list[str] = []
        for name, value in _parse_options(options_text, where):
            option = _OPTIONS[name]
            if not option.per_requirement:
                raise RequirementsError(
                    f"option {name} cannot follow a requirement",
                    context=where,
                    hint=f"put {name} on a line of its own",
                )
            if name == "--hash":
                hashes.append(check_hash(value, where))
            else:
                log.debug("%s: ignoring %s (pypidl does not build packages)", where, name)
        requirement = index_requirement(req_text, where)
        parsed = ParsedRequirement(
            requirement=requirement,
            name=canonicalize_name(requirement.name),
            source=where,
            hashes=tuple(hashes),
        )
        if constraint:
            if parsed.requirement.extras:
                raise RequirementsError(
                    f"constraint {req_text!r} has extras",
                    context=where,
                    hint="constraints take a name, a version specifier and a marker only; "
                    "put the extras on the requirement",
                )
            self._constraints.append(parsed)
        else:
            self._requirements.append(parsed)

    def _file_option(
        self,
        name: str,
        value: str | None,
        where: str,
        source: str,
        *,
        constraint: bool,
        stack: tuple[str, ...],
    ) -> None:
        option = _OPTIONS[name]
        if option.per_requirement:
            raise RequirementsError(
                f"option {name} applies to a requirement, but this line has none",
                context=where,
                hint=f"write {name} after the requirement on the same line (use '\\' to continue "
                "a long line)",
            )
        if name in _IGNORED:
            log.debug("%s: ignoring %s (it only matters to an installer)", where, name)
            return
        if value is None:  # of the flags, only --no-index is not ignored
            raise RequirementsError(
                f"{name} is not supported: pypidl needs a package index to mirror from",
                context=where,
                hint="remove it; choose the index with -i/--index-url",
            )
        if name == "--editable":
            raise RequirementsError(
                f"editable requirement '-e {redact(value)}' is not supported",
                context=where,
                hint=INDEX_ONLY_HINT,
            )
        if name == "--index-url":
            self._index_url = check_index_url(value, context=where)
        elif name == "--extra-index-url":
            self._extra_index_urls.append(check_index_url(value, context=where))
        else:  # --requirement, --constraint
            path = _include_path(value, source, where)
            self.parse_file(
                path,
                constraint=constraint or name == "--constraint",
                included_from=where,
                stack=stack,
            )


# -- helpers ------------------------------------------------------------------------------------


def _decode(data: bytes, path: str) -> str:
    """Text of a requirements file: a BOM or a coding comment decides, UTF-8 otherwise."""
    encoding = "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding = name
            break
    else:
        for raw in data.split(b"\n", 2)[:2]:
            match = _CODING_RE.match(raw)
            if match:
                encoding = match.group(1).decode("ascii")
                break
    try:
        return data.decode(encoding)
    except LookupError:
        raise RequirementsError(
            f"unknown encoding {encoding!r} in the coding comment", context=f"{path}:1"
        ) from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RequirementsError(
            f"cannot decode the file as {encoding} (byte {exc.start})",
            context=f"{path}:{line}",
            hint="save the file as UTF-8, or declare its encoding in a '# -*- coding: ... -*-' "
            "comment on the first line",
        ) from None


def _logical_lines(text: str) -> Iterator[_Logical]:
    """Join backslash continuations; each logical line carries the number of its first line.

    A comment line ends a continuation (pip keeps comments from swallowing what follows them).
    """
    pending: list[str] = []
    start = 0
    for lineno, line in enumerate(_LINE_BREAK_RE.split(text), start=1):
        is_comment = _COMMENT_RE.match(line) is not None
        if line.endswith("\\") and not is_comment:
            if not pending:
                start = lineno
            pending.append(line[:-1])
            continue
        if is_comment:
            line = " " + line
        if pending:
            pending.append(line)
            yield _Logical(start, "".join(pending))
            pending = []
        else:
            yield _Logical(lineno, line)
    if pending:
        yield _Logical(start, "".join(pending))


def _split_requirement(line: str) -> tuple[str, str]:
    """``(requirement, options)``: options start at the first word that starts with ``-``.

    The requirement keeps its own spacing, so quoted marker values reach packaging unchanged.
    """
    match = _OPTION_START_RE.search(line)
    if match is None:
        return line, ""
    return line[: match.start()].rstrip(), line[match.start() :].lstrip()


def _parse_options(text: str, where: str) -> list[tuple[str, str | None]]:
    """``[(long option name, value or None)]`` for the options in ``text``, in order."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise RequirementsError(f"cannot split options: {exc}", context=where) from None
    found: list[tuple[str, str | None]] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        inline: str | None = None
        if word.startswith("--"):
            name, sep, rest = word.partition("=")
            name = _long_option(name, where)
            if sep:
                inline = rest
        elif word.startswith("-") and len(word) > 1:
            short = word[:2]
            if short not in _SHORT_OPTIONS:
                raise _unknown_option(short, where)
            name = _SHORT_OPTIONS[short]
            if len(word) > 2:
                inline = word[2:]
        else:
            raise RequirementsError(
                f"unexpected {word!r} among options",
                context=where,
                hint="a requirement must come before its options on a line",
            )
        option = _OPTIONS[name]
        if not option.takes_value:
            if inline is not None:
                raise RequirementsError(f"option {name} takes no value", context=where)
            found.append((name, None))
            continue
        if inline is None:
            if index >= len(words):
                raise RequirementsError(f"option {name} needs a value", context=where)
            inline = words[index]
            index += 1
        found.append((name, inline))
    return found


def _long_option(name: str, where: str) -> str:
    """The full option ``name`` stands for; unique prefixes are accepted, as pip's parser does."""
    if name in _OPTIONS:
        return name
    matches = [long for long in _OPTIONS if long.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RequirementsError(
            f"ambiguous option {name}: could be {', '.join(sorted(matches))}", context=where
        )
    raise _unknown_option(name, where)


def _unknown_option(name: str, where: str) -> RequirementsError:
    return RequirementsError(
        f"unknown option {name}",
        context=where,
        hint=f"requirements files may use {_SUPPORTED_TEXT}, and the pip options pypidl ignores: "
        f"{', '.join(sorted(_IGNORED))}",
    )


def _include_path(value: str, source: str, where: str) -> str:
    scheme_match = _URL_SCHEME_RE.match(value)
    if scheme_match and len(scheme_match.group(1)) > 1:  # not a Windows drive letter
        if scheme_match.group(1).lower() != "file":
            raise RequirementsError(
                f"cannot include {redact(value)}: only local requirements files are supported",
                context=where,
                hint="download the file and name its path instead",
            )
        return url2pathname(urlsplit(value).path)
    if Path(value).is_absolute():
        return value
    return os.path.normpath(Path(source).parent / value)


def _short(path: str) -> str:
    return Path(path).name or path
