"""How long reading a big lock takes: ``python scripts/bench_lock_read.py [--packages N]``.

Writes a pylock.toml with N packages (one wheel each, a marker on every other one) into a
temporary directory, then times :func:`pypidl.plan.lock_formats.read_lock` and selecting the
packages for the 42 default targets, as ``plan --lock`` does before it reads any page.  Reading
used to be quadratic in the lock's size (each package's line was counted from the top of the
file): 29 s for 20,000 packages (issue 20).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pypidl.plan.lock_formats import read_lock
from pypidl.plan.targets import parse_targets


def write_pylock(path: Path, packages: int) -> None:
    parts = ["lock-version = '1.0'\ncreated-by = 'bench'\n"]
    for n in range(packages):
        name = f"project-{n:06d}"
        wheel = f"project_{n:06d}-1.0-py3-none-any.whl"
        marker = "marker = \"python_version >= '3.9'\"\n" if n % 2 else ""
        parts.append(
            f"\n[[packages]]\nname = '{name}'\nversion = '1.0'\n{marker}"
            f"wheels = [{{ name = '{wheel}', url = 'http://127.0.0.1:9/{wheel}', "
            f"size = 1000, hashes = {{ sha256 = '{n:064x}' }} }}]\n"
        )
    path.write_text("".join(parts), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pylock.toml"
        write_pylock(path, args.packages)
        size = path.stat().st_size
        start = time.perf_counter()
        lock = read_lock(path)
        read = time.perf_counter() - start
        targets = parse_targets()  # the defaults
        start = time.perf_counter()
        selected = lock.select(targets)
        select = time.perf_counter() - start
    print(
        f"{args.packages} packages ({size / 2**20:.1f} MiB): read_lock {read:.2f} s, "
        f"select for {len(targets)} targets {select:.2f} s ({len(selected)} selected)"
    )


if __name__ == "__main__":
    main()
