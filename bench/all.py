"""Every benchmark, one after the other, each printing its own table and ratios with the spread of its repetitions.

    .venv/bin/python bench/all.py            # the README's figures, three repetitions each (~40 min on 2 cores)
    .venv/bin/python bench/all.py --quick    # the same benchmarks, smaller, one repetition (~6 min): do they run
    .venv/bin/python bench/all.py --reps 5   # more repetitions

Each benchmark is also a script of its own with ``--help``; every one takes ``--reps`` and prints
each figure as the median (min–max) over the repetitions (``measures.Spread``): a figure that one
run produced is not a result. They run one at a time because several of them measure CPU time or
milliseconds, which a neighbour would disturb.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
REPS = 3

# (script, what it measures, full arguments, quick arguments); all.py adds --reps to both.
BENCHMARKS = [
    ("cpu_per_delta.py", "1. CPU per streamed delta", [], ["--deltas", "20000"]),
    ("bytecodes_per_delta.py", "1. bytecodes per streamed delta", [], ["--turns", "3"]),
    ("barge_in.py", "2. barge-in penalty per cancel policy", [], []),
    ("scale.py", "3. concurrent sessions", [], ["--levels", "10,25,50", "--window", "10"]),
    ("rollover.py", "4. the turn that crosses the connection-age limit", [], ["--turns", "40"]),
    ("incremental.py", "5. incremental share and bytes over 50 turns", [], ["--turns", "24"]),
    ("argument_deltas.py", "6. one-character argument deltas", [], ["--chars", "20000"]),
    ("run_inference.py", "7. run_inference beside a streaming turn", [], ["--inferences", "3"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs, same benchmarks, one repetition")
    parser.add_argument("--reps", type=int, default=None, help=f"repetitions of each benchmark (default: {REPS})")
    parser.add_argument("--only", default="", help="comma-separated script names, e.g. rollover.py")
    args = parser.parse_args()
    reps = args.reps if args.reps is not None else 1 if args.quick else REPS
    failed = []
    started_all = time.monotonic()
    for script, title, full, quick in BENCHMARKS:
        if args.only and script not in args.only.split(","):
            continue
        print(f"\n== {title} ({script}), {reps} repetitions ==", flush=True)
        started = time.monotonic()
        arguments = [*(quick if args.quick else full), "--reps", str(reps)]
        code = subprocess.call([sys.executable, str(HERE / script), *arguments])
        print(f"-- {script}: exit {code}, {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(script)
    print(f"\nall benchmarks: {time.monotonic() - started_all:.0f} s")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
