"""Per-project indexes: declaring, pinning, the requirements-file form, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypidl.errors import BadInputError
from pypidl.plan.project_indexes import parse_project_indexes, read_directives
from pypidl.sources import Mirror

DEFAULT = [Mirror.from_index_url("http://127.0.0.1:1/simple/", name="primary")]


def test_a_pinned_project_gets_its_index_only_and_the_others_the_usual_order() -> None:
    routing = parse_project_indexes(
        [("vendor=http://127.0.0.1:2/simple", None)], [("Torch_Pkg=vendor", None)]
    )
    (only,) = routing.mirrors_for("torch-pkg", DEFAULT)
    assert only.name == "vendor"
    assert only.simple_url == "http://127.0.0.1:2/simple/"
    assert routing.mirrors_for("numpy", DEFAULT) == DEFAULT
    assert set(routing.routes()) == {"torch-pkg"}


def test_the_requirements_file_form(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(
        "# pypidl: index vendor=http://127.0.0.1:2/simple/\n"
        "numpy\n"
        "#pypidl: project-index torch=vendor\n"
        "torch==2.5.1+cu124\n"
    )
    indexes, pins = read_directives([reqs])
    assert indexes == [("vendor=http://127.0.0.1:2/simple/", f"{reqs}:1")]
    assert pins == [("torch=vendor", f"{reqs}:3")]
    routing = parse_project_indexes(indexes, pins)
    assert routing.pins == {"torch": "vendor"}


@pytest.mark.parametrize(
    ("indexes", "pins", "says"),
    [
        (["vendor"], [], "NAME=VALUE"),
        (["vendor=ftp://127.0.0.1/simple/"], [], "must start with"),
        (["a=http://127.0.0.1:1/simple/", "a=http://127.0.0.1:2/simple/"], [], "declared twice"),
        ([], ["torch=vendor"], "not declared"),
        (
            ["v=http://127.0.0.1:1/simple/", "w=http://127.0.0.1:2/simple/"],
            ["t=v", "T=w"],
            "two indexes",
        ),
    ],
)
def test_bad_routing_is_one_error_naming_where(
    indexes: list[str], pins: list[str], says: str
) -> None:
    with pytest.raises(BadInputError) as caught:
        parse_project_indexes(
            [(i, "reqs.txt:7") for i in indexes], [(p, "reqs.txt:8") for p in pins]
        )
    assert says in caught.value.message
    assert caught.value.context in {"reqs.txt:7", "reqs.txt:8"}
    assert caught.value.exit_code == 2
