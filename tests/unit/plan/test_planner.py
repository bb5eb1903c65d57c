"""planner: the URLs of a planned file, every mirror's, best first."""

from __future__ import annotations

import pytest
from packaging.utils import NormalizedName

from pypidl.config import NetworkSettings
from pypidl.plan._selection import entry_for
from pypidl.plan.planner import Planner
from pypidl.plan.targets import parse_targets
from pypidl.sources import Mirror
from tests.lib.fake_index import SHA, remote_file

(LINUX311,) = parse_targets(python_versions=["3.11"], platforms=["linux-x86_64"])


def planner(*mirrors: Mirror) -> Planner:
    return Planner(list(mirrors), NetworkSettings(), [LINUX311])


A = Mirror.from_base("a", "http://127.0.0.1:1/a")
B = Mirror("b", "http://127.0.0.1:2/simple/")  # its own file layout: nothing to derive
C = Mirror.from_base("c", "http://127.0.0.1:3/c")
HASH_PATH = "ab/cd/ef0123/demo-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("mirrors", "listed_by", "url", "expected"),
    [
        pytest.param(
            (A, B, C),
            "a",
            f"http://127.0.0.1:1/a/web/packages/{HASH_PATH}",
            [
                f"http://127.0.0.1:1/a/web/packages/{HASH_PATH}",
                f"http://127.0.0.1:3/c/web/packages/{HASH_PATH}",
            ],
            id="listing-mirror-first",
        ),
        pytest.param(
            (A, B, C),
            "c",
            f"http://127.0.0.1:3/c/web/packages/{HASH_PATH}",
            [
                f"http://127.0.0.1:1/a/web/packages/{HASH_PATH}",
                f"http://127.0.0.1:3/c/web/packages/{HASH_PATH}",
            ],
            id="configured-order",
        ),
        pytest.param(
            (A, B, C),
            "b",
            "http://127.0.0.1:2/files/demo-1.0-py3-none-any.whl",
            ["http://127.0.0.1:2/files/demo-1.0-py3-none-any.whl"],
            id="foreign-layout-only-itself",
        ),
        pytest.param(
            (B, A),
            "b",
            f"http://127.0.0.1:9/packages/{HASH_PATH}",
            [
                f"http://127.0.0.1:9/packages/{HASH_PATH}",
                f"http://127.0.0.1:1/a/web/packages/{HASH_PATH}",
            ],
            id="file-host-of-the-listing-mirror",
        ),
        pytest.param(
            (A,),
            "gone",
            f"http://127.0.0.1:9/packages/{HASH_PATH}",
            [
                f"http://127.0.0.1:9/packages/{HASH_PATH}",
                f"http://127.0.0.1:1/a/web/packages/{HASH_PATH}",
            ],
            id="unknown-mirror-url-kept-first",
        ),
    ],
)
def test_entry_urls(
    mirrors: tuple[Mirror, ...], listed_by: str, url: str, expected: list[str]
) -> None:
    p = planner(*mirrors)
    entry = entry_for(
        remote_file("demo-1.0-py3-none-any.whl", mirror=listed_by, url=url),
        p.client.mirrors_for("demo"),
    )
    assert list(entry.urls) == expected
    assert entry.project == NormalizedName("demo")
    assert entry.sha256 == SHA
    assert entry.kind == "wheel"
