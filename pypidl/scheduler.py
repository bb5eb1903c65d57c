"""``--shard auto``: this host's share, K of N, from the scheduler that started the process.

* Kubernetes Indexed Jobs set ``JOB_COMPLETION_INDEX`` (0-based) in every pod; the number of
  completions is not in the pod's environment, so the Job passes it: ``JOB_COMPLETIONS`` (the
  manifest in ``docs/schedulers.md`` copies it from ``spec.completions``).
* Slurm job arrays set ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT`` (and
  ``SLURM_ARRAY_TASK_MIN`` / ``SLURM_ARRAY_TASK_STEP``, so ``--array=1-8`` and ``--array=0-14:2``
  both count their tasks from 1).

K is 1-based, as in ``--shard K/N``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pypidl.errors import BadInputError

__all__ = ["shard_from_environment"]

_HINT = (
    "run under a Kubernetes Indexed Job (JOB_COMPLETION_INDEX and JOB_COMPLETIONS) or a Slurm "
    "job array (SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT), or give --shard K/N"
)
#: no scheduler counts its tasks in numbers this long
_DIGITS = 18


def _int(environ: Mapping[str, str], name: str) -> int:
    value = environ.get(name, "").strip()
    if len(value) > _DIGITS:  # int() refuses 5,000 digits with a ValueError of its own
        raise BadInputError(
            f"--shard auto: {name} is out of range ({len(value)} characters)", hint=_HINT
        )
    try:
        return int(value)
    except ValueError:
        raise BadInputError(
            f"--shard auto: {name}={value!r} is not a whole number", hint=_HINT
        ) from None


def shard_from_environment(environ: Mapping[str, str]) -> tuple[int, int, str]:
    """``(K, N, which scheduler)`` for this process.

    :raises BadInputError: neither scheduler's variables are set, or they are incomplete or
        inconsistent.
    """
    if "JOB_COMPLETION_INDEX" in environ:
        if "JOB_COMPLETIONS" not in environ:
            raise BadInputError(
                "--shard auto: JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not "
                "(Kubernetes does not put the completions count in the pod's environment)",
                hint="add JOB_COMPLETIONS to the container's env with the Job's spec.completions",
            )
        index, count = _int(environ, "JOB_COMPLETION_INDEX"), _int(environ, "JOB_COMPLETIONS")
        source = "Kubernetes Indexed Job"
        k = index + 1
    elif "SLURM_ARRAY_TASK_ID" in environ:
        if "SLURM_ARRAY_TASK_COUNT" not in environ:
            raise BadInputError(
                "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not",
                hint=_HINT,
            )
        task, count = _int(environ, "SLURM_ARRAY_TASK_ID"), _int(environ, "SLURM_ARRAY_TASK_COUNT")
        first = _int(environ, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in environ else 0
        step = _int(environ, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in environ else 1
        if step < 1 or (task - first) % step:
            raise BadInputError(
                f"--shard auto: task {task} is not on the array's grid (min {first}, step {step})",
                hint=_HINT,
            )
        source = "Slurm job array"
        k = (task - first) // step + 1
    else:
        raise BadInputError("--shard auto: no scheduler told this process its share", hint=_HINT)
    if count < 1 or not 1 <= k <= count:
        raise BadInputError(
            f"--shard auto: the {source} gives task {k} of {count}, which is out of range",
            hint=_HINT,
        )
    return k, count, source
