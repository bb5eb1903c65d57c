"""``pypidl check DIR -r requirements.txt``: can every target install the requirements offline?"""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import TYPE_CHECKING

from pypidl.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from pypidl.cli._output import UI

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction, parents: SimpleNamespace) -> None:  # type: ignore[type-arg]
    """Add the ``check`` command to ``sub``."""
    parser = sub.add_parser(
        "check",
        parents=[parents.output, parents.targets],
        help="prove, offline, that every target can install the requirements from a mirror",
        description=(
            "Resolve the requirements for every target from the mirror in DIR alone (its "
            "catalog and files; no network), the way planning resolves them against an index. "
            "Prints one line per target: OK, or what is missing and why. Exit code 0 when every "
            "target can install everything, 1 when some cannot."
        ),
    )
    parser.add_argument("directory", metavar="DIR", help="the mirror (the --download-dir of sync)")
    parser.add_argument(
        "-r",
        "--requirement",
        dest="requirements",
        action="append",
        required=True,
        metavar="FILE",
        help="requirements file in pip's format (repeatable; -c constraints inside are honoured)",
    )
    parser.add_argument(
        "--wheels-only",
        action="store_true",
        help="count a target that would have to build an sdist as failing (exit 1), as a "
        "network whose machines have no compilers needs",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    from pypidl.cli._common import targets_from_args
    from pypidl.plan.requirements import parse_requirement_files
    from pypidl.store.check import check_mirror

    targets = targets_from_args(args)
    parsed = parse_requirement_files(args.requirements)
    requirements = [r.requirement for r in parsed.requirements]
    constraints = [c.requirement for c in parsed.constraints]
    ui.info(
        "Checking %d requirement(s) for %d target(s) against %s",
        len(requirements),
        len(targets),
        args.directory,
    )
    report = check_mirror(args.directory, requirements, targets, constraints=constraints)

    rows: list[tuple[str, str, str]] = []
    for problem in report.problems:
        rows.append(("(all)", "MISSING", problem.reason))
    for result in report.results:
        if result.wheels_only:
            rows.append((result.target, "OK", f"{len(result.pins)} project(s), wheels only"))
        elif result.ok:
            status = "NEEDS BUILD" if args.wheels_only else "OK, BUILDS"
            rows.append(
                (result.target, status, f"{len(result.pins)} project(s), building from sdists:")
            )
            rows.extend(("", "", f"{release} ({needs})") for release, needs in result.builds)
        for n, problem in enumerate(result.missing):
            rows.append(
                (result.target if n == 0 else "", "MISSING" if n == 0 else "", problem.reason)
            )
        for problem in result.warnings:
            ui.warning("%s: %s", result.target, problem.reason)
    ui.table("Mirror Check", ("Target", "Status", "Details"), rows)
    failed = len(report.failed)
    building = [r for r in report.results if r.ok and r.builds]
    if report.ok and not building:
        ui.info("Every target installs the requirements from %s, wheels only", args.directory)
        return EXIT_OK
    if building:
        say = ui.error if args.wheels_only else ui.warning
        say(
            "%d of %d target(s) install only by building sdists (their machines need the "
            "build tools named)",
            len(building),
            len(report.results),
        )
    if report.ok and not args.wheels_only:
        ui.info("Every target can install the requirements from %s", args.directory)
        return EXIT_OK
    if failed:
        ui.error("%d of %d target(s) cannot install the requirements", failed, len(report.results))
    return EXIT_FAILED
