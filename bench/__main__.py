"""`make bench`: the benchmarks against floors measured in the same run (issue: proof at scale).

Each benchmark module in this package defines `run() -> BenchResult`; none exist yet."""

import sys


def main() -> int:
    print("bench: no benchmarks yet (they arrive with the proof-at-scale issue)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
