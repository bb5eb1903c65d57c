#!/usr/bin/env python3
"""What publishing costs: ``pypidl publish`` beside ``twine upload`` of the same files.

Not a test.  It builds a mirror of ``--files`` small wheels (``--projects`` projects, several
versions each) with the test suite's wheel factory, starts two empty pypiservers on 127.0.0.1
(the test extra's; it serves with waitress when that is installed), then, in the same run:

* ``pypidl publish MIRROR --to A`` (a fresh process, as a user runs it), then again (the
  re-run that uploads nothing);
* ``twine upload --repository-url B`` of the same files, then again with ``--skip-existing``
  (which twine 6.2 and later refuse for any repository but PyPI: the line says so).

Each line gives the wall time, the client's CPU time (the servers' is not counted) and the
files each server holds afterwards; the last line the ratio (POSIX only: it reads getrusage).  The machine's load average is printed before and after: on a shared machine the
figures are noisy, so compare runs made together only.

    python scripts/bench_publish.py
    python scripts/bench_publish.py --files 200 --concurrency 16
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lib.mirror import add_to_mirror  # noqa: E402
from tests.lib.repositories import PypiServer, server_script  # noqa: E402
from tests.lib.wheels import make_wheel  # noqa: E402


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, exit code and the last words of ``cmd``; its CPU seconds go to ``CPU``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    lines = (done.stdout + done.stderr).split("\n")
    said = " ".join(" ".join(lines[-4:]).split())
    return seconds, done.returncode, said[-200:]


#: CPU seconds of each timed client process (the servers' own are not counted)
CPU: list[float] = []


def held(server: PypiServer) -> int:
    return sum(1 for p in server.packages.rglob("*") if p.is_file())


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--projects", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    twine = server_script("twine")
    if twine is None or server_script("pypi-server") is None:
        print("needs twine and pypiserver (pip install -e '.[test]')", file=sys.stderr, flush=True)
        return 2
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TWINE_"))}
    # pypiserver without -P accepts any credentials; twine asks for some
    env.update({"TWINE_USERNAME": "bench", "TWINE_PASSWORD": "bench", "NO_PROXY": "127.0.0.1"})
    env["PIP_CONFIG_FILE"] = os.devnull
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        mirror = tmp / "mirror"
        versions = max(1, args.files // args.projects)
        for n in range(args.files):
            project, version = f"proj{n // versions:04d}", f"1.{n % versions}"
            add_to_mirror(mirror, make_wheel(tmp / "dists", project, version))
        files = sorted((tmp / "dists").glob("*.whl"))
        size = sum(f.stat().st_size for f in files)
        print(
            f"{len(files)} wheels, {size / 1024:.0f} KiB in all; load average {load()}", flush=True
        )
        ours, theirs = PypiServer(tmp / "a" / "packages"), PypiServer(tmp / "b" / "packages")
        ours.start()
        theirs.start()
        try:
            publish = [sys.executable, "-m", "pypidl", "publish", str(mirror), "-q"]
            publish += ["--to", ours.url, "--concurrency", str(args.concurrency)]
            upload = [twine, "upload", "--non-interactive", "--disable-progress-bar"]
            upload += ["--repository-url", theirs.url]
            first, rc, said = timed(publish, env)
            print(
                f"pypidl publish: {first:.1f} s ({CPU[-1]:.1f} s CPU), exit {rc}, {held(ours)} files held ({said})",
                flush=True,
            )
            again, rc, said = timed(publish, env)
            print(
                f"pypidl publish again: {again:.1f} s ({CPU[-1]:.1f} s CPU), exit {rc} ({said})",
                flush=True,
            )
            base, rc, said = timed([*upload, *map(str, files)], env)
            print(
                f"twine upload: {base:.1f} s ({CPU[-1]:.1f} s CPU), exit {rc}, {held(theirs)} files held",
                flush=True,
            )
            base_again, rc, said = timed([*upload, "--skip-existing", *map(str, files)], env)
            print(
                f"twine upload --skip-existing again: {base_again:.1f} s, exit {rc} ({said})",
                flush=True,
            )
        finally:
            ours.stop()
            theirs.stop()
        print(
            f"ratio (pypidl / twine upload): {first / base:.2f}; pypidl's re-run (no upload) "
            f"{again / base:.2f} of a twine upload; load average {load()}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
