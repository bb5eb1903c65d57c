"""--shard auto: K/N from Kubernetes Indexed Jobs and Slurm job arrays, a clear error otherwise."""

from __future__ import annotations

import pytest

from pypidl.errors import BadInputError
from pypidl.scheduler import shard_from_environment


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"JOB_COMPLETION_INDEX": "0", "JOB_COMPLETIONS": "4"}, (1, 4, "Kubernetes Indexed Job")),
        ({"JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "4"}, (4, 4, "Kubernetes Indexed Job")),
        # sbatch --array=0-3
        (
            {
                "SLURM_ARRAY_TASK_ID": "2",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_MIN": "0",
            },
            (3, 4, "Slurm job array"),
        ),
        # sbatch --array=1-8
        (
            {
                "SLURM_ARRAY_TASK_ID": "1",
                "SLURM_ARRAY_TASK_COUNT": "8",
                "SLURM_ARRAY_TASK_MIN": "1",
            },
            (1, 8, "Slurm job array"),
        ),
        # sbatch --array=0-14:2 (8 tasks: 0, 2, ..., 14)
        (
            {
                "SLURM_ARRAY_TASK_ID": "14",
                "SLURM_ARRAY_TASK_COUNT": "8",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_STEP": "2",
            },
            (8, 8, "Slurm job array"),
        ),
    ],
)
def test_the_scheduler_gives_this_host_its_share(
    environ: dict[str, str], expected: tuple[int, int, str]
) -> None:
    assert shard_from_environment(environ) == expected


def test_every_task_of_an_array_gets_a_different_share() -> None:
    shares = {
        shard_from_environment(
            {
                "SLURM_ARRAY_TASK_ID": str(t),
                "SLURM_ARRAY_TASK_COUNT": "5",
                "SLURM_ARRAY_TASK_MIN": "10",
            }
        )[0]
        for t in range(10, 15)
    }
    assert shares == {1, 2, 3, 4, 5}


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({}, "no scheduler told this process its share"),
        ({"JOB_COMPLETION_INDEX": "0"}, "JOB_COMPLETIONS is not"),
        ({"JOB_COMPLETION_INDEX": "4", "JOB_COMPLETIONS": "4"}, "task 5 of 4"),
        ({"JOB_COMPLETION_INDEX": "x", "JOB_COMPLETIONS": "4"}, "'x' is not a whole number"),
        ({"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT is not"),
        (
            {
                "SLURM_ARRAY_TASK_ID": "3",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_STEP": "2",
            },
            "not on the array's grid",
        ),
    ],
)
def test_no_or_broken_scheduler_variables_are_one_clear_error(
    environ: dict[str, str], says: str
) -> None:
    with pytest.raises(BadInputError) as caught:
        shard_from_environment(environ)
    assert says in caught.value.message
    assert caught.value.exit_code == 2
    assert caught.value.hint
