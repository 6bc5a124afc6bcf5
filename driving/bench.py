"""``driving bench <name>``: the project's benchmarks, each printing its figures.

==========  =================================================================================
name        what it measures
==========  =================================================================================
``env``     policy and simulated steps/s of every scenario (stock simulation)
``sim``     stock vs accelerated simulation side by side, with the speed-up
``collect`` collection frames/s with 1 and 2 workers; time and size of a dataset
``train``   training samples/s through Lightning beside a bare PyTorch loop
==========  =================================================================================
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

BENCHMARKS = {
    "env": "driving.bench_env",
    "sim": "driving.bench_sim",
    "collect": "driving.bench_collect",
    "train": "driving.bench_train",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to one benchmark's ``main``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    if args[0] not in BENCHMARKS:
        print(
            f"driving bench: error: unknown benchmark {args[0]!r}; choose from: "
            f"{', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    try:
        module = importlib.import_module(BENCHMARKS[args[0]])
    except ModuleNotFoundError as exc:
        if exc.name == BENCHMARKS[args[0]]:
            print(f"driving bench {args[0]}: not yet available", file=sys.stderr)
            return 2
        raise
    return int(module.main(args[1:]) or 0)
