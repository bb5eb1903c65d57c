"""The one wording of a refused digest: both digests, and the file when the context lacks it."""

from __future__ import annotations

from pypidl.hashing import sha256_mismatch


def test_a_mismatch_names_both_digests() -> None:
    expected, actual = "a" * 64, "b" * 64
    assert (
        sha256_mismatch(expected, actual) == f"sha256 mismatch: expected {expected}, got {actual}"
    )


def test_a_mismatch_names_the_file_when_asked() -> None:
    text = sha256_mismatch("a" * 64, "b" * 64, name="demo-1.0.tar.gz")
    assert text.startswith("sha256 mismatch for demo-1.0.tar.gz: expected ")
