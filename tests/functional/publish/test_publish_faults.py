"""``pypidl publish`` against a scripted repository on 127.0.0.1: refusals real servers give
rarely or only under load (503 with Retry-After, 401, a 409 race, listings without digests)."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypidl.cli import main
from pypidl.manifest import Manifest, dump
from tests.lib.mirror import add_to_mirror
from tests.lib.wheels import make_wheel

PASSWORD = "tw1ne-secret"  # noqa: S105 - looked for in every output


class Repository(http.server.ThreadingHTTPServer):
    """Accepts uploads at ``/``, lists them at ``/simple/<project>/``, serves ``/files/``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.answers: list[int] = []  # statuses the next POSTs get instead of success
        self.posts: list[str | None] = []  # the Authorization header of each POST
        self.digests = True
        self.gets: list[str] = []
        self.fallback: str | None = None  # where unknown projects are sent (pypiserver's fall-back)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Repository

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/html") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        self.server.gets.append(path)
        project = [*path.split("/"), "", ""][2]
        unknown = not any(n.split("-")[0] == project for n in self.server.files)
        if path.startswith("/simple/") and path != "/simple/" and unknown and self.server.fallback:
            self.send_response(303)
            self.send_header("Location", self.server.fallback + path[len("/simple/") :])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/simple/":
            self._send(200, b"<html><body></body></html>")
        elif path.startswith("/simple/"):
            project = path.split("/")[2]
            names = [n for n in self.server.files if n.split("-")[0] == project]
            if not names:
                self._send(404)
                return
            links = "".join(
                f'<a href="/files/{n}'
                + (
                    f"#sha256={hashlib.sha256(self.server.files[n]).hexdigest()}"
                    if self.server.digests
                    else ""
                )
                + f'">{n}</a>'
                for n in names
            )
            self._send(200, f"<html><body>{links}</body></html>".encode())
        elif path.startswith("/files/") and path[7:] in self.server.files:
            self._send(200, self.server.files[path[7:]], "application/octet-stream")
        else:
            self._send(404)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append(self.headers.get("Authorization"))
        if self.server.answers:
            self._send(self.server.answers.pop(0), b"File already exists")
            return
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            if part.get_filename():
                self.server.files[part.get_filename()] = part.get_payload(decode=True)  # type: ignore[assignment]
        self._send(200)


@pytest.fixture
def repository() -> Iterator[Repository]:
    server = Repository()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    add_to_mirror(root, make_wheel(tmp_path / "dists", "alpha", "1.0"))
    return root


def publish(
    mirror: Path, repo: Repository, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    report = mirror.parent / "report.json"
    code = main(
        ["publish", str(mirror), "--to", repo.url, "--report", str(report), "--retries", "3"]
    )
    out = capsys.readouterr()
    return code, json.loads(report.read_text())["files"][0], out.out + out.err + report.read_text()


def test_a_busy_repository_is_asked_again_with_twines_credentials(
    mirror: Path,
    repository: Repository,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWINE_USERNAME", "ci")
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)
    repository.answers = [503]
    code, file, said = publish(mirror, repository, capsys)
    assert code == 0, said
    assert (file["status"], file["attempts"], file["served"]) == ("uploaded", 2, True)
    basic = "Basic " + base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
    assert repository.posts == [basic, basic]
    assert (
        repository.files["alpha-1.0-py3-none-any.whl"]
        == (mirror / "packages/alpha/alpha-1.0-py3-none-any.whl").read_bytes()
    )
    assert PASSWORD not in said


def test_refused_credentials_fail_at_once(
    mirror: Path, repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    repository.answers = [401, 401, 401]
    code, file, _said = publish(mirror, repository, capsys)
    assert code == 1
    assert (file["status"], file["attempts"]) == ("failed", 1)
    assert "401" in file["reason"]
    assert "TWINE_USERNAME" in file["reason"]
    assert not repository.files


def test_an_upload_that_lost_a_race_to_the_same_bytes_is_already_there(
    mirror: Path,
    repository: Repository,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wheel = mirror / "packages/alpha/alpha-1.0-py3-none-any.whl"
    repository.answers = [409]
    original = repository.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

    def racing(handler: _Handler) -> None:  # another client's upload lands first
        repository.files[wheel.name] = wheel.read_bytes()
        original(handler)

    monkeypatch.setattr(_Handler, "do_POST", racing)
    code, file, said = publish(mirror, repository, capsys)
    assert code == 0, said
    assert (file["status"], file["served"]) == ("present", True)


def test_a_listing_without_digests_is_checked_by_the_bytes_served(
    mirror: Path, repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    repository.digests = False
    wheel = mirror / "packages/alpha/alpha-1.0-py3-none-any.whl"
    repository.files[wheel.name] = b"other bytes"
    code, file, said = publish(mirror, repository, capsys)
    assert code == 1
    assert file["status"] == "conflict"
    assert hashlib.sha256(b"other bytes").hexdigest() in file["reason"]
    repository.files[wheel.name] = wheel.read_bytes()
    code, file, said = publish(mirror, repository, capsys)
    assert code == 0, said
    assert (file["status"], file["attempts"], file["served"]) == ("present", 0, True)
    assert not repository.posts


def test_credentials_from_netrc_are_sent_and_never_shown(
    mirror: Path,
    repository: Repository,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    netrc = mirror.parent / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login keeper password {PASSWORD}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    code, file, said = publish(mirror, repository, capsys)
    assert code == 0, said
    assert file["status"] == "uploaded"
    assert repository.posts == ["Basic " + base64.b64encode(f"keeper:{PASSWORD}".encode()).decode()]
    assert PASSWORD not in said


def test_a_project_sent_to_a_fall_back_index_is_not_there_and_that_index_is_never_asked(
    mirror: Path, repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream = Repository()
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        wheel = mirror / "packages/alpha/alpha-1.0-py3-none-any.whl"
        upstream.files[wheel.name] = wheel.read_bytes()  # the same file, elsewhere
        repository.fallback = f"{upstream.url}simple/"
        code, file, said = publish(mirror, repository, capsys)
    finally:
        upstream.shutdown()
        upstream.server_close()
        thread.join(5)
    assert code == 0, said
    assert (file["status"], file["served"]) == ("uploaded", True)
    assert "sends alpha to another index" in said
    assert not upstream.gets


def test_shards_of_a_manifest_publish_its_files_between_them_and_nothing_else(
    tmp_path: Path, repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "mirror"
    dists = tmp_path / "dists"
    planned = [add_to_mirror(root, make_wheel(dists, name, "1.0")) for name in ("alpha", "beta")]
    add_to_mirror(root, make_wheel(dists, "gamma", "1.0"))  # in the mirror, not in the manifest
    manifest = tmp_path / "manifest.json"
    dump(Manifest(entries=tuple(planned)), manifest)
    shares = []
    for k in (1, 2):
        code = main(
            ["publish", str(root), "--to", repository.url, "--manifest", str(manifest),
             "--shard", f"{k}/2"]
        )  # fmt: skip
        assert code == 0, capsys.readouterr()
        shares.append(set(repository.files))
    assert len(shares[0]) == 1
    assert shares[1] == {e.filename for e in planned}


def test_an_accepted_upload_the_index_does_not_list_afterwards_fails_the_run(
    mirror: Path, repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    repository.answers = [200]  # accepted, and dropped
    code, file, said = publish(mirror, repository, capsys)
    assert code == 1
    assert (file["status"], file["served"]) == ("uploaded", False)
    assert file["reason"] == "not served afterwards: not listed"
    assert "read back: 0 of 1 served" in said
