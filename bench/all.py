"""Every benchmark, one after the other, each printing its own table and ratios.

    .venv/bin/python bench/all.py            # the figures in the README (~30 minutes on 2 cores)
    .venv/bin/python bench/all.py --quick    # the same benchmarks, smaller (~5 minutes)

Each benchmark is also a script of its own with ``--help``. They run one at a time because
several of them measure CPU time or milliseconds, which a neighbour would disturb.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

# (script, what it measures, full arguments, quick arguments)
BENCHMARKS = [
    ("cpu_per_delta.py", "1. CPU per streamed delta", [], ["--deltas", "20000"]),
    ("barge_in.py", "2. barge-in penalty per cancel policy", ["--reps", "3"], ["--reps", "1"]),
    ("scale.py", "3. concurrent sessions", [], ["--levels", "10,25,50", "--window", "10"]),
    ("rollover.py", "4. the turn that crosses the connection-age limit", [], ["--turns", "40"]),
    ("incremental.py", "5. incremental share and bytes over 50 turns", [], ["--turns", "24"]),
    ("argument_deltas.py", "6. one-character argument deltas", [], ["--chars", "20000", "--reps", "1"]),
    ("run_inference.py", "7. run_inference beside a streaming turn", [], ["--reps", "2", "--inferences", "3"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs, same benchmarks")
    parser.add_argument("--only", default="", help="comma-separated script names, e.g. rollover.py")
    args = parser.parse_args()
    failed = []
    for script, title, full, quick in BENCHMARKS:
        if args.only and script not in args.only.split(","):
            continue
        print(f"\n== {title} ({script}) ==", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / script), *(quick if args.quick else full)])
        print(f"-- {script}: exit {code}, {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
