"""The legacy upload API's form for one distribution, and that form streamed as a request body.

Every repository a closed network runs (pypiserver, devpi, Nexus, Artifactory) accepts the
upload twine speaks: a ``multipart/form-data`` POST with ``:action=file_upload``,
``protocol_version=1``, the core metadata fields (lower-cased, ``-`` as ``_``), the file type and
Python version, the digests, and the file as ``content``.

The body is never held in memory: :class:`MultipartBody` is a file object whose length is known
before the first byte is sent (a ``Content-Length``, not chunked encoding, which some servers
refuse) and whose reads walk the form's parts and the file, hashing the file as it goes.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name, parse_wheel_filename

from pypidl.dists import MAX_METADATA, read_sdist_pkg_info, read_wheel_metadata
from pypidl.errors import PypidlError
from pypidl.hashing import CHUNK_SIZE

__all__ = ["MultipartBody", "UploadForm", "upload_form"]

#: core metadata keys whose form field has another name (the rest keep theirs)
_FIELD_NAMES = {
    "platforms": "platform",
    "supported_platforms": "supported_platform",
    "license_files": "license_file",
}
#: fields that are not core metadata of the upload form
_SKIPPED = {"import_names", "import_namespaces"}


@dataclass(frozen=True)
class UploadForm:
    """The fields of one upload, in order, without the file and its computed digests."""

    filename: str
    fields: tuple[tuple[str, str], ...]

    def value(self, name: str) -> str | None:
        return next((v for k, v in self.fields if k == name), None)


def upload_form(path: Path, filename: str, sha256: str) -> UploadForm:
    """The form fields of the distribution at ``path`` (named ``filename``).

    :raises PypidlError: the file is neither a wheel nor an sdist, or its core metadata cannot
        be read.
    """
    try:
        with open(path, "rb") as fh:
            if filename.endswith(".whl"):
                name, _, _, _ = parse_wheel_filename(filename)
                raw = read_wheel_metadata(fh, canonicalize_name(name), max_size=MAX_METADATA)
                filetype, pyversion = "bdist_wheel", filename[:-4].split("-")[-3]
            elif filename.endswith((".tar.gz", ".zip")):
                raw = read_sdist_pkg_info(fh, filename, max_size=MAX_METADATA)
                filetype, pyversion = "sdist", "source"
            else:
                raise PypidlError("neither a wheel nor an sdist", context=filename)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise PypidlError(f"cannot read its core metadata: {exc}", context=filename) from None
    metadata, _unparsed = parse_email(raw)
    if not metadata.get("name") or not metadata.get("version"):
        raise PypidlError("its core metadata has no Name or Version", context=filename)
    fields: list[tuple[str, str]] = [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("filetype", filetype),
        ("pyversion", pyversion),
        ("sha256_digest", sha256),
    ]
    for key, value in metadata.items():
        if key in _SKIPPED:
            continue
        field = _FIELD_NAMES.get(key, key)
        if isinstance(value, dict):  # Project-URL: "label, url"
            fields.extend((field, f"{label}, {url}") for label, url in value.items())
        elif isinstance(value, list):
            if key == "keywords":
                fields.append((field, ",".join(value)))
            else:
                fields.extend((field, str(item)) for item in value)
        else:
            fields.append((field, str(value)))
    return UploadForm(filename=filename, fields=tuple(fields))


def _part_head(boundary: str, name: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{_quoted(name)}"'
    if filename is not None:
        disposition += f'; filename="{_quoted(filename)}"'
        extra = "Content-Type: application/octet-stream\r\n"
    else:
        extra = ""
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{extra}\r\n".encode()


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


#: digests computed while the file streams, sent after it: (field, algorithm, hex length)
_TRAILING = (("md5_digest", "md5", 32), ("blake2_256_digest", "blake2b", 64))


class MultipartBody(io.RawIOBase):
    """One upload's ``multipart/form-data`` body, read in pieces, the file streamed from disk.

    The form fields come first, then the file, then its MD5 and BLAKE2b-256 digests, computed on
    the way (twine sends both; servers read the whole form before using any field).  The
    file's sha256 is computed too: bytes that differ from ``sha256`` (the file changed since it
    was verified) end the body with an error instead of its last part, so the server never
    stores them.

    :raises PypidlError: from :meth:`read`, when the file's sha256 is not ``sha256``.
    """

    def __init__(self, form: UploadForm, path: Path, sha256: str):
        super().__init__()
        self.boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self._path = path
        self._sha256 = sha256
        head = b"".join(
            _part_head(self.boundary, name, None) + value.encode("utf-8") + b"\r\n"
            for name, value in form.fields
        )
        head += _part_head(self.boundary, "content", form.filename)
        self._size = os.stat(path).st_size
        tail_len = sum(len(self._field(name, "0" * width)) for name, _, width in _TRAILING) + len(
            self._closing()
        )
        self._length = len(head) + self._size + 2 + tail_len
        self._pending = head
        self._offset = 0  # what of _pending was read (slicing a memoryview would copy less)
        self._file: IO[bytes] | None = None
        self._hashes: dict[str, Any] = {
            "sha256": hashlib.sha256(),
            # a form field servers ask for, not a security check
            "md5": hashlib.md5(usedforsecurity=False),
            "blake2b": hashlib.blake2b(digest_size=32),
        }
        self._stage = 0  # 0: head, 1: file, 2: tail, 3: done
        self.sent = 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def _field(self, name: str, value: str) -> bytes:
        return _part_head(self.boundary, name) + value.encode() + b"\r\n"

    def _closing(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    def tell(self) -> int:
        # requests takes the body's length from len() less tell(); without tell() it would
        # fall back to chunked encoding
        return self.sent

    def read(self, size: int | None = -1) -> bytes:
        want = CHUNK_SIZE if size is None or size < 0 else max(1, size)
        while self._offset >= len(self._pending) and self._stage < 3:
            self._pending, self._offset = b"", 0
            self._advance()
        out = self._pending[self._offset : self._offset + want]
        self._offset += len(out)
        self.sent += len(out)
        return out

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _advance(self) -> None:
        if self._stage == 0:
            self._file = open(self._path, "rb")  # noqa: SIM115 - closed at the end of the file
            self._stage = 1
        if self._stage == 1:
            chunk = self._file.read(CHUNK_SIZE) if self._file is not None else b""
            if chunk:
                for h in self._hashes.values():
                    h.update(chunk)
                self._pending = chunk
                return
            self.close_file()
            actual = self._hashes["sha256"].hexdigest()
            if actual != self._sha256:
                raise PypidlError(
                    f"changed since it was verified: sha256 {actual}, not {self._sha256}; "
                    "nothing was stored (run 'pypidl verify')",
                    context=self._path.name,
                )
            tail = b"\r\n" + b"".join(
                self._field(name, self._hashes[algo].hexdigest()) for name, algo, _ in _TRAILING
            )
            self._pending = tail + self._closing()
            self._stage = 2
            return
        self._stage = 3

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        self.close_file()
        super().close()
