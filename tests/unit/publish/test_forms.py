"""The upload form of a wheel and an sdist, and the streamed multipart body it becomes."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
from pathlib import Path

import pytest

from pypidl.config import NetworkSettings
from pypidl.errors import BadInputError, PypidlError
from pypidl.publish.forms import MultipartBody, upload_form
from pypidl.publish.repository import credentials
from tests.lib.wheels import make_sdist, make_wheel


def drain(body: MultipartBody) -> bytes:
    data = b""
    while chunk := body.read(1000):  # small reads, as http.client sends a body
        data += chunk
    return data


def parts(body: MultipartBody) -> list[tuple[str, str | None, bytes]]:
    """``(field, filename, value)`` of each part, as a server's form parser reads them."""
    data = drain(body)
    assert len(data) == len(body)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {body.content_type}\r\n\r\n".encode() + data
    )
    found = []
    for part in message.iter_parts():
        found.append(
            (
                part.get_param("name", header="content-disposition"),
                part.get_filename(),
                part.get_payload(decode=True),
            )
        )
    return found  # type: ignore[return-value]


def test_a_wheel_form_carries_its_core_metadata_and_the_file_streams_with_its_digests(
    tmp_path: Path,
) -> None:
    wheel = make_wheel(
        tmp_path, "Alpha.Beta", "1.0", requires_dist=["gamma>=2", "delta; extra == 'x'"],
        requires_python=">=3.9", provides_extra=["x"],
    )  # fmt: skip
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    form = upload_form(wheel, wheel.name, sha)
    assert form.value(":action") == "file_upload"
    assert form.value("protocol_version") == "1"
    assert form.value("filetype") == "bdist_wheel"
    assert form.value("pyversion") == "py3"
    assert form.value("name") == "Alpha.Beta"
    assert form.value("version") == "1.0"
    assert form.value("metadata_version")
    assert form.value("requires_python") == ">=3.9"
    assert [v for k, v in form.fields if k == "requires_dist"] == [
        "gamma>=2",
        "delta; extra == 'x'",
    ]
    assert form.value("sha256_digest") == sha

    found = parts(MultipartBody(form, wheel, sha))
    names = [name for name, _, _ in found]
    assert names[: len(form.fields)] == [k for k, _ in form.fields]
    content = next(f for f in found if f[0] == "content")
    assert content[1] == wheel.name
    assert content[2] == wheel.read_bytes()
    values = {name: value for name, _, value in found}
    assert values["md5_digest"].decode() == hashlib.md5(wheel.read_bytes()).hexdigest()  # noqa: S324
    blake = hashlib.blake2b(wheel.read_bytes(), digest_size=32).hexdigest()
    assert values["blake2_256_digest"].decode() == blake


def test_an_sdist_form_is_read_from_its_pkg_info(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "beta", "2.0", requires_dist=["alpha"])
    form = upload_form(sdist, sdist.name, "0" * 64)
    assert (form.value("filetype"), form.value("pyversion")) == ("sdist", "source")
    assert (form.value("name"), form.value("version")) == ("beta", "2.0")
    assert form.value("requires_dist") == "alpha"


def test_bytes_that_changed_since_verified_end_the_body_with_an_error(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "alpha", "1.0")
    form = upload_form(wheel, wheel.name, "0" * 64)
    body = MultipartBody(form, wheel, "0" * 64)
    with pytest.raises(PypidlError, match="changed since it was verified"):
        drain(body)


def test_a_file_without_core_metadata_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "alpha-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(PypidlError, match="cannot read its core metadata"):
        upload_form(bad, bad.name, "0" * 64)


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        ("https://u:p%40ss@repo.example/up", {}, ("u", "p@ss")),
        ("https://repo.example/up", {"TWINE_USERNAME": "t", "TWINE_PASSWORD": "w"}, ("t", "w")),
        ("https://u:p@repo.example/up", {"TWINE_USERNAME": "t", "TWINE_PASSWORD": "w"}, ("u", "p")),
        ("https://repo.example/up", {}, None),
    ],
)
def test_credentials_come_from_the_url_then_twines_variables(
    url: str, env: dict[str, str], expected: tuple[str, str] | None
) -> None:
    clean, net = credentials(url, NetworkSettings(), env)
    assert clean == "https://repo.example/up/"
    found = [(u, p) for host, u, p in net.credentials if host == "repo.example"]
    assert found[:1] == ([expected] if expected else [])
    assert "p@ss" not in repr(net)


def test_a_repository_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="must start with https://"):
        credentials(tmp_path.as_uri(), NetworkSettings(), {})
