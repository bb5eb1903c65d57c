"""pip-format requirements files: the syntax pypidl accepts and every error it reports."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pypidl.errors import BadInputError, RequirementsError
from pypidl.plan.requirements import (
    RequirementSet,
    parse_requirement_files,
    parse_requirement_lines,
)

SHA256 = "ab" * 32
SHA384 = "cd" * 48
SHA512 = "ef" * 64


def write(directory: Path, name: str, text: str, *, encoding: str = "utf-8") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def parse_one(tmp_path: Path, text: str) -> tuple[RequirementSet, str]:
    path = write(tmp_path, "requirements.txt", text)
    return parse_requirement_files([path]), str(path)


def summary(result: RequirementSet) -> list[tuple[str, int, tuple[str, ...]]]:
    return [
        (req.line(), int(req.source.rsplit(":", 1)[1]), req.hashes) for req in result.requirements
    ]


# -- syntax that parses ----------------------------------------------------------------------------

ACCEPTED = [
    pytest.param("requests\n", [("requests", 1, ())], id="bare-name"),
    pytest.param(
        "\n# a comment\n   # indented comment\n\nrequests>=2.31  # why we need it\n",
        [("requests>=2.31", 5, ())],
        id="comments-and-blank-lines",
    ),
    pytest.param(
        "Foo_Bar[socks,Extra] >= 1.0, < 2 ; python_version < '3.9'\n",
        [('Foo_Bar[Extra,socks]<2,>=1.0; python_version < "3.9"', 1, ())],
        id="extras-specifiers-marker",
    ),
    pytest.param(
        "a==1\nb \\\n  >=2 \\\n  ; sys_platform == 'linux'\nc\n",
        [("a==1", 1, ()), ('b>=2; sys_platform == "linux"', 2, ()), ("c", 5, ())],
        id="continuation-keeps-first-line-number",
    ),
    pytest.param(
        "a \\\n# a comment line ends the continuation\nb\n",
        [("a", 1, ()), ("b", 3, ())],
        id="comment-line-ends-continuation",
    ),
    pytest.param(
        "a # the comment swallows the next line \\\nb\nc\n",
        [("a", 1, ()), ("c", 3, ())],
        id="comments-stripped-after-joining",
    ),
    pytest.param("# comment \\\nb\n", [("b", 2, ())], id="backslash-in-comment-line"),
    pytest.param("a \\", [("a", 1, ())], id="continuation-at-eof"),
    pytest.param(
        "a\r\nb==1\r\n\r\nc\r\n", [("a", 1, ()), ("b==1", 2, ()), ("c", 4, ())], id="crlf"
    ),
    pytest.param("a\rb\r", [("a", 1, ()), ("b", 2, ())], id="cr-only"),
    pytest.param("a \\\r\n  ==1\r\n", [("a==1", 1, ())], id="crlf-continuation"),
    pytest.param(
        f"a==1 --hash=sha256:{SHA256}\n",
        [("a==1", 1, (f"sha256:{SHA256}",))],
        id="hash-equals",
    ),
    pytest.param(
        f"a==1 --hash sha256:{SHA256.upper()}\n",
        [("a==1", 1, (f"sha256:{SHA256}",))],
        id="hash-separate-value-uppercase-hex",
    ),
    pytest.param(
        f"a==1 \\\n    --hash=sha256:{SHA256} \\\n    --hash=sha384:{SHA384} \\\n"
        f"    --hash=SHA512:{SHA512}\nb==2\n",
        [
            ("a==1", 1, (f"sha256:{SHA256}", f"sha384:{SHA384}", f"sha512:{SHA512}")),
            ("b==2", 5, ()),
        ],
        id="several-hashes-pip-compile-style",
    ),
    pytest.param(
        f"a==1; python_version >= '3.8' --hash=sha256:{SHA256}\n",
        [('a==1; python_version >= "3.8"', 1, (f"sha256:{SHA256}",))],
        id="hash-after-marker",
    ),
    pytest.param(
        "a --config-settings=x=y --global-option=--quiet -C k=v\n",
        [("a", 1, ())],
        id="ignored-per-requirement-options",
    ),
    pytest.param(
        "a>=1\na<3\nA_==2\n", [("a>=1", 1, ()), ("a<3", 2, ()), ("A_==2", 3, ())], id="duplicates"
    ),
    pytest.param(
        "--pre\n--prefer-binary\n--only-binary :all:\n--no-binary=foo\n-f ./wheels\n"
        "--find-links=http://127.0.0.1/links\n-f./x\n--trusted-host 127.0.0.1\n"
        "--use-feature=truststore\n--require-hashes\n--pre --prefer-binary\na\n",
        [("a", 12, ())],
        id="ignored-file-options",
    ),
    pytest.param(
        f"a\t;\tpython_version\t<\t'4'\t--hash=sha256:{SHA256}\n",
        [('a; python_version < "4"', 1, (f"sha256:{SHA256}",))],
        id="tabs",
    ),
    pytest.param(
        "a ; platform_version == 'x  y'\n",
        [('a; platform_version == "x  y"', 1, ())],
        id="marker-value-spacing-kept",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted_syntax(
    tmp_path: Path, text: str, expected: list[tuple[str, int, tuple[str, ...]]]
) -> None:
    result, path = parse_one(tmp_path, text)
    assert summary(result) == expected
    assert all(req.source.startswith(f"{path}:") for req in result.requirements)
    assert result.files == (path,)
    assert result.constraints == ()


def test_parsed_requirement_fields(tmp_path: Path) -> None:
    result, path = parse_one(tmp_path, "\nZope.Interface[Test] ~= 5.0 ; os_name == 'nt'\n")
    (req,) = result.requirements
    assert req.name == "zope-interface"
    assert req.requirement.name == "Zope.Interface"
    assert req.requirement.extras == {"Test"}
    assert str(req.requirement.marker) == 'os_name == "nt"'
    assert req.source == f"{path}:2"
    assert req.hashes == ()


def test_names_are_normalized_and_unique_in_order(tmp_path: Path) -> None:
    result, _ = parse_one(tmp_path, "Zeta\nalpha.beta>=1\nZETA<2\nAlpha_Beta\n")
    assert result.names() == ["zeta", "alpha-beta"]


def test_index_urls_last_index_wins_extras_kept_once(tmp_path: Path) -> None:
    text = (
        "-i http://127.0.0.1:1/first/simple\n"
        "--extra-index-url http://127.0.0.1:2/simple\n"
        "--index-url=http://user:secret@127.0.0.1:3/simple/#frag\n"
        "--extra-index-url=http://127.0.0.1:2/simple\n"
        "--extra-index http://127.0.0.1:4/simple\n"  # unique prefix, as pip accepts
        "a\n"
    )
    result, _ = parse_one(tmp_path, text)
    assert result.index_url == "http://user:secret@127.0.0.1:3/simple/#frag"
    assert result.extra_index_urls == ("http://127.0.0.1:2/simple", "http://127.0.0.1:4/simple")
    assert result.names() == ["a"]


def test_short_index_url_attached_value(tmp_path: Path) -> None:
    result, _ = parse_one(tmp_path, "-ihttp://127.0.0.1/simple\n")
    assert result.index_url == "http://127.0.0.1/simple"
    assert result.requirements == ()


def test_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYPIDL_T_VERSION", "2.31")
    monkeypatch.setenv("PYPIDL_T_TOKEN", "s3cret")
    monkeypatch.setenv("PYPIDL_T_EMPTY", "")
    monkeypatch.setenv("lower_case", "ignored")
    text = (
        "requests==${PYPIDL_T_VERSION}\n"
        "-i http://me:${PYPIDL_T_TOKEN}@127.0.0.1/simple\n"
        "--extra-index-url http://127.0.0.1/${PYPIDL_T_EMPTY}/${lower_case}/$PYPIDL_T_TOKEN\n"
    )
    result, _ = parse_one(tmp_path, text)
    assert summary(result) == [("requests==2.31", 1, ())]
    assert result.index_url == "http://me:s3cret@127.0.0.1/simple"
    # empty, lower-case and brace-less variables are left as written, as pip leaves them
    assert result.extra_index_urls == (
        "http://127.0.0.1/${PYPIDL_T_EMPTY}/${lower_case}/$PYPIDL_T_TOKEN",
    )


def test_unset_variable_left_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYPIDL_T_UNSET", raising=False)
    with pytest.raises(RequirementsError, match=r"\$\{PYPIDL_T_UNSET\}"):
        parse_one(tmp_path, "a==${PYPIDL_T_UNSET}\n")


def test_variable_can_hold_a_comment_marker_after_stripping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # comments are stripped before expansion, so a value with " #" stays part of the line
    monkeypatch.setenv("PYPIDL_T_FRAG", "simple #frag")
    result, _ = parse_one(tmp_path, "-i 'http://127.0.0.1/${PYPIDL_T_FRAG}'\n")
    assert result.index_url == "http://127.0.0.1/simple #frag"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"\xef\xbb\xbfrequests==1\n", "requests==1", id="utf8-bom"),
        pytest.param("requests==1\r\n".encode("utf-16"), "requests==1", id="utf16-bom"),
        pytest.param("requests==1\n".encode("utf-32"), "requests==1", id="utf32-bom"),
        pytest.param(
            "# -*- coding: latin-1 -*-\na==1 # caf\xe9\n".encode("latin-1"),
            "a==1",
            id="coding-comment",
        ),
        pytest.param("a==1 # na\u00efve \u2713\n".encode(), "a==1", id="utf8-comment"),
    ],
)
def test_encodings(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "r.txt"
    path.write_bytes(data)
    result = parse_requirement_files([path])
    assert [req.line() for req in result.requirements] == [expected]


def test_parse_requirement_lines_source_and_bom() -> None:
    result = parse_requirement_lines("\ufeffa\n\nb==1\n", source="<stdin>")
    assert [req.source for req in result.requirements] == ["<stdin>:1", "<stdin>:3"]
    assert result.files == ()


def test_parse_requirement_lines_default_source() -> None:
    with pytest.raises(RequirementsError) as info:
        parse_requirement_lines("a\n-e .\n")
    assert info.value.context == "<string>:2"


# -- includes and constraints ---------------------------------------------------------------------


def test_includes_expand_in_place_relative_to_including_file(tmp_path: Path) -> None:
    top = write(tmp_path, "requirements.txt", "first\n-r reqs/base.txt\nlast\n")
    base = write(
        tmp_path, "reqs/base.txt", "base-one\n-rsub/deep.txt\n--requirement=../other.txt\n"
    )
    deep = write(tmp_path, "reqs/sub/deep.txt", "deep\n")
    other = write(tmp_path, "other.txt", "\n\nother\n")
    result = parse_requirement_files([top])
    assert [(r.line(), r.source) for r in result.requirements] == [
        ("first", f"{top}:1"),
        ("base-one", f"{base}:1"),
        ("deep", f"{deep}:1"),
        ("other", f"{other}:3"),
        ("last", f"{top}:3"),
    ]
    assert result.files == (str(top), str(base), str(deep), str(other))


def test_include_from_relative_top_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "proj/requirements.txt", "-r more.txt\n")
    write(tmp_path, "proj/more.txt", "more\n")
    monkeypatch.chdir(tmp_path)
    result = parse_requirement_files(["proj/requirements.txt"])
    assert [r.source for r in result.requirements] == [str(Path("proj/more.txt")) + ":1"]


def test_include_file_url_and_absolute_path(tmp_path: Path) -> None:
    abs_file = write(tmp_path, "elsewhere/abs.txt", "absolute\n")
    url_file = write(tmp_path, "elsewhere/url.txt", "by-url\n")
    top = write(tmp_path, "top/r.txt", f"-r {abs_file}\n-r {url_file.as_uri()}\n")
    result = parse_requirement_files([top])
    assert result.names() == ["absolute", "by-url"]


def test_parse_lines_includes_relative_to_source(tmp_path: Path) -> None:
    write(tmp_path, "inc.txt", "included\n")
    result = parse_requirement_lines("-r inc.txt\n", source=str(tmp_path / "virtual.txt"))
    assert result.names() == ["included"]
    assert result.files == (str(tmp_path / "inc.txt"),)


def test_diamond_include_is_not_a_cycle(tmp_path: Path) -> None:
    top = write(tmp_path, "top.txt", "-r a.txt\n-r b.txt\n")
    write(tmp_path, "a.txt", "-r common.txt\na\n")
    write(tmp_path, "b.txt", "-r common.txt\nb\n")
    write(tmp_path, "common.txt", "common\n")
    result = parse_requirement_files([top])
    assert [r.name for r in result.requirements] == ["common", "a", "common", "b"]
    assert [Path(f).name for f in result.files] == ["top.txt", "a.txt", "common.txt", "b.txt"]


def test_constraints_recursive(tmp_path: Path) -> None:
    top = write(tmp_path, "requirements.txt", "a[extra]\n-c constraints/c.txt\nb\n")
    c = write(
        tmp_path,
        "constraints/c.txt",
        f"a==1.0 --hash=sha256:{SHA256}\n-r more.txt\n-c --extra.txt\n-i http://127.0.0.1/s\n",
    )
    more = write(tmp_path, "constraints/more.txt", "b<2; python_version < '3.10'\n")
    write(tmp_path, "constraints/--extra.txt", "d!=3\n")
    result = parse_requirement_files([top])
    assert [r.line() for r in result.requirements] == ["a[extra]", "b"]
    assert [(r.line(), r.source, r.hashes) for r in result.constraints] == [
        ("a==1.0", f"{c}:1", (f"sha256:{SHA256}",)),
        ('b<2; python_version < "3.10"', f"{more}:1", ()),
        ("d!=3", f"{tmp_path / 'constraints' / '--extra.txt'}:1", ()),
    ]
    assert result.index_url == "http://127.0.0.1/s"
    assert result.constraints_text() == 'a==1.0\nb<2; python_version < "3.10"\nd!=3\n'


def test_constraints_from_top_level_and_several_files(tmp_path: Path) -> None:
    one = write(tmp_path, "one.txt", "a\n-c two.txt\n")
    write(tmp_path, "two.txt", "a<5\n")
    three = write(tmp_path, "three.txt", "b\n--constraint two.txt\n")
    result = parse_requirement_files([one, three])
    assert result.names() == ["a", "b"]
    assert [r.line() for r in result.constraints] == ["a<5", "a<5"]


def test_lines_for_pip_compile_parse_back_to_the_same_requirements(tmp_path: Path) -> None:
    """pip-compile is given each requirement's line (hashes left out) and the constraints."""
    write(tmp_path, "c.txt", "a<3\n")
    result, _ = parse_one(
        tmp_path, f"B[x]>=1 --hash=sha256:{SHA256}\na ; os_name=='posix'\n-c c.txt\n"
    )
    lines = [r.line() for r in result.requirements]
    assert lines == ["B[x]>=1", 'a; os_name == "posix"']
    assert result.constraints_text() == "a<3\n"
    again = parse_requirement_lines("".join(f"{line}\n" for line in lines))
    assert [r.line() for r in again.requirements] == lines


def test_result_pickles(tmp_path: Path) -> None:
    result, _ = parse_one(tmp_path, f"a[x]==1; python_version>'3' --hash=sha256:{SHA256}\n")
    clone = pickle.loads(pickle.dumps(result))  # noqa: S301  # our own bytes
    assert clone == result
    assert hash(clone.requirements[0]) == hash(result.requirements[0])


# -- errors ---------------------------------------------------------------------------------------

PREAMBLE = "# header\n\nok==1\n"  # the line under test is line 4

REJECTED = [
    pytest.param("-e ./pkg", "editable requirement '-e ./pkg'", id="editable-short"),
    pytest.param("-e.", "editable requirement '-e .'", id="editable-attached"),
    pytest.param(
        "--editable=git+https://127.0.0.1/r.git#egg=x", "editable requirement", id="editable-long"
    ),
    pytest.param("git+https://127.0.0.1/r.git#egg=x", "VCS requirement", id="vcs-bare"),
    pytest.param("hg+http://127.0.0.1/r", "VCS requirement", id="vcs-hg"),
    pytest.param("name @ git+ssh://git@127.0.0.1/r.git", "VCS requirement", id="vcs-at"),
    pytest.param("./pkg", "local path requirement './pkg'", id="path-dot"),
    pytest.param(".", "local path requirement", id="path-cwd"),
    pytest.param("./pkg[extra]", "local path requirement", id="path-extras"),
    pytest.param("/abs/pkg", "local path requirement", id="path-absolute"),
    pytest.param("sub/pkg", "local path requirement", id="path-relative"),
    pytest.param("C:\\pkgs\\x.whl", "local path requirement", id="path-windows"),
    pytest.param("pkg-1.0-py3-none-any.whl", "local path requirement", id="path-wheel-file"),
    pytest.param("pkg-1.0.tar.gz", "local path requirement", id="path-sdist-file"),
    pytest.param("file:///srv/pkg-1.0.zip", "local path requirement", id="file-url"),
    pytest.param("name @ file:///srv/pkg", "local path requirement", id="file-url-at"),
    pytest.param("name @ ./pkg", "local path requirement", id="path-at"),
    pytest.param("http://127.0.0.1/pkg-1.0-py3-none-any.whl", "direct URL requirement", id="url"),
    pytest.param(
        "name @ https://127.0.0.1/pkg.whl#sha256=00",
        "direct URL requirement 'name @ https://127.0.0.1/pkg.whl#sha256=00'",
        id="url-at-with-fragment",
    ),
    pytest.param(
        "name @ https://user:tok3n@127.0.0.1/pkg.whl",
        "'name @ https://****@127.0.0.1/pkg.whl'",
        id="url-credentials-redacted",
    ),
    pytest.param("foo bar", "invalid requirement 'foo bar': Expected", id="malformed-words"),
    pytest.param("foo>=", "invalid requirement 'foo>='", id="malformed-specifier"),
    pytest.param("foo; nonsense == 1", "invalid requirement", id="malformed-marker"),
    pytest.param("--frobnicate", "unknown option --frobnicate", id="unknown-long"),
    pytest.param("-x foo", "unknown option -x", id="unknown-short"),
    pytest.param("--no=x", "ambiguous option --no", id="ambiguous-prefix"),
    pytest.param("a --frob", "unknown option --frob", id="unknown-after-requirement"),
    pytest.param(
        "a --index-url http://127.0.0.1/", "cannot follow a requirement", id="file-opt-after-req"
    ),
    pytest.param("--hash=sha256:" + SHA256, "has none", id="hash-without-requirement"),
    pytest.param("--no-index", "--no-index is not supported", id="no-index"),
    pytest.param("--pre=yes", "--pre takes no value", id="flag-with-value"),
    pytest.param("-r", "-requirement needs a value", id="missing-value"),
    pytest.param("--index-url 'http://127.0.0.1", "cannot split options", id="unbalanced-quote"),
    pytest.param("a==1 --hash=md5:" + "0" * 32, "strong algorithm", id="hash-weak"),
    pytest.param("a==1 --hash=" + SHA256, "strong algorithm", id="hash-no-algo"),
    pytest.param("a==1 --hash=sha256:abc", "64 hexadecimal digits", id="hash-short"),
    pytest.param("a==1 --hash=sha256:" + "g" * 64, "64 hexadecimal digits", id="hash-not-hex"),
    pytest.param("a==1 --hash", "--hash needs a value", id="hash-missing"),
    pytest.param("-r missing.txt", "requirements file not found", id="missing-include"),
    pytest.param("-c missing.txt", "requirements file not found", id="missing-constraint"),
    pytest.param("-r http://127.0.0.1/r.txt", "only local requirements files", id="url-include"),
    pytest.param("-r requirements.txt", "includes itself", id="self-include"),
    pytest.param("-c c.txt", "constraint 'a[x]<2' has extras", id="constraint-extras"),
    pytest.param(
        "a \\\n  >= 1 \\\n  --hash=sha1:00\n", "strong algorithm", id="continued-error-first-line"
    ),
]


@pytest.mark.parametrize(("line", "message"), REJECTED)
def test_rejected(tmp_path: Path, line: str, message: str) -> None:
    write(tmp_path, "c.txt", "a[x]<2\n")
    path = write(tmp_path, "requirements.txt", PREAMBLE + line + "\nlater\n")
    with pytest.raises(RequirementsError) as info:
        parse_requirement_files([path])
    err = info.value
    # a constraint's own problem is reported where the constraint is written
    where = f"{tmp_path / 'c.txt'}:1" if "has extras" in message else f"{path}:4"
    assert err.context == where
    assert message in err.message
    assert "tok3n" not in str(err)
    assert isinstance(err, BadInputError)
    assert err.exit_code == 2


@pytest.mark.parametrize(
    "line", ["-e ./pkg", "./pkg", "name @ https://127.0.0.1/x.whl", "git+https://127.0.0.1/r"]
)
def test_non_index_errors_explain_what_is_supported(tmp_path: Path, line: str) -> None:
    with pytest.raises(RequirementsError) as info:
        parse_one(tmp_path, line + "\n")
    assert info.value.hint is not None
    assert "package index" in info.value.hint
    assert "name[extras] specifier" in info.value.hint


def test_unknown_option_hint_lists_supported_options(tmp_path: Path) -> None:
    with pytest.raises(RequirementsError) as info:
        parse_one(tmp_path, "--frobnicate\n")
    assert info.value.hint is not None
    assert "-r/--requirement" in info.value.hint
    assert "--extra-index-url" in info.value.hint


def test_missing_top_level_file_context_is_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(RequirementsError) as info:
        parse_requirement_files([missing])
    assert info.value.context == str(missing)
    assert "not found" in info.value.message


def test_missing_include_names_the_resolved_path(tmp_path: Path) -> None:
    top = write(tmp_path, "r.txt", "a\n-r sub/../gone.txt\n")
    with pytest.raises(RequirementsError) as info:
        parse_requirement_files([top])
    assert info.value.context == f"{top}:2"
    assert str(tmp_path / "gone.txt") in info.value.message


def test_directory_is_not_a_requirements_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    top = write(tmp_path, "r.txt", "-r dir\n")
    with pytest.raises(RequirementsError, match="is a directory") as info:
        parse_requirement_files([top])
    assert info.value.context == f"{top}:1"
    with pytest.raises(RequirementsError, match="is a directory") as info:
        parse_requirement_files([tmp_path / "dir"])
    assert info.value.context == str(tmp_path / "dir")


def test_include_cycle_reports_the_closing_line(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "x\n-r b.txt\n")
    b = write(tmp_path, "b.txt", "y\n\n-r a.txt\n")
    with pytest.raises(RequirementsError) as info:
        parse_requirement_files([a])
    assert info.value.context == f"{b}:3"
    assert "a.txt -> b.txt -> a.txt" in info.value.message


def test_include_cycle_through_constraints(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "-c b.txt\n")
    b = write(tmp_path, "b.txt", "-r a.txt\n")
    with pytest.raises(RequirementsError, match="includes itself") as info:
        parse_requirement_files([a])
    assert info.value.context == f"{b}:1"


@pytest.mark.parametrize(
    ("data", "where", "fragment"),
    [
        pytest.param(b"a\nb\n\xff\xfe\xfa\n", 3, "cannot decode the file as utf-8", id="bad-utf8"),
        pytest.param(b"# coding: no-such-codec\na\n", 1, "unknown encoding", id="bad-codec"),
    ],
)
def test_undecodable_files(tmp_path: Path, data: bytes, where: int, fragment: str) -> None:
    path = tmp_path / "r.txt"
    path.write_bytes(data)
    with pytest.raises(RequirementsError) as info:
        parse_requirement_files([path])
    assert info.value.context == f"{path}:{where}"
    assert fragment in info.value.message


def test_error_in_include_points_at_included_file(tmp_path: Path) -> None:
    top = write(tmp_path, "r.txt", "a\n-r inc.txt\n")
    inc = write(tmp_path, "inc.txt", "\n\n./local\n")
    with pytest.raises(RequirementsError) as info:
        parse_requirement_files([top])
    assert info.value.context == f"{inc}:3"


def test_error_survives_pickling(tmp_path: Path) -> None:
    with pytest.raises(RequirementsError) as info:
        parse_one(tmp_path, "-e .\n")
    clone = pickle.loads(pickle.dumps(info.value))  # noqa: S301  # our own bytes
    assert (clone.message, clone.context, clone.hint) == (
        info.value.message,
        info.value.context,
        info.value.hint,
    )
