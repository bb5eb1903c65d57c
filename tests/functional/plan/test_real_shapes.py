"""The plan of a corpus shaped like the real index stays what it was (issue 18: planning may
get cheaper, never different).

``scripts/bench_corpus.py`` builds the benchmark's corpus (projects with thousands of
releases, compiled projects with dozens of wheels per release, deep chains, markers, a newest
release that needs Python 3.10 here and there); it is planned for the 67 default targets
through the real command line, and what the plan chose is compared with the record in
``tests/data/real_shapes_plan.txt``: each file with its version, kind, Requires-Python and why
it is there, and the plan's problems.  Digests, sizes and URLs are left out (the server's port
changes; the digests follow from the names).

When a change to planning is meant to change what it chooses, write the record again with
``PYPIDL_WRITE_RECORD=1`` and say why in the commit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

from pypidl.cli import main

ROOT = Path(__file__).resolve().parents[3]
RECORD = ROOT / "tests" / "data" / "real_shapes_plan.txt"
#: the corpus: small enough for the suite, large enough for every shape (the 1,000-project
#: benchmark corpus is the same generator with more projects)
PROJECTS, ROOTS, SEED = 120, 12, 1


def _bench_corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_corpus", ROOT / "scripts" / "bench_corpus.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_corpus"] = module  # (its dataclasses look their module up while made)
    spec.loader.exec_module(module)
    return module


def what_was_chosen(manifest: dict) -> list[str]:
    """One line per file of the plan, then one per problem: what a change of planning must not
    change."""
    lines = [
        " ".join(
            [
                entry["filename"],
                entry["version"],
                entry["kind"],
                entry["requires_python"] or "-",
                ",".join(entry["why"]),
            ]
        )
        for entry in sorted(manifest["files"], key=lambda e: e["filename"])
    ]
    lines += [f"problem {json.dumps(p, sort_keys=True)}" for p in manifest["problems"]]
    return lines


def test_the_plan_of_real_shaped_pages_is_the_recorded_one(tmp_path: Path) -> None:
    corpus_module = _bench_corpus()
    corpus = corpus_module.build_corpus(PROJECTS, ROOTS, SEED)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("".join(f"{name}\n" for name in corpus.roots), encoding="utf-8")
    out = tmp_path / "manifest.json"
    with corpus_module.CorpusServer(corpus, 0.0) as server:
        code = main(["plan", "-r", str(reqs), "-i", server.simple_url, "-o", str(out), "-q"])
    assert code == 0
    manifest = json.loads(out.read_text())
    assert len(manifest["targets"]) == 67  # the default targets
    assert len(manifest["projects"]) == PROJECTS  # every project is reached
    lines = what_was_chosen(manifest)
    if os.environ.get("PYPIDL_WRITE_RECORD"):
        RECORD.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    recorded = RECORD.read_text(encoding="utf-8").splitlines()
    assert lines == recorded
