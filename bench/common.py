"""What every benchmark shares: the result line, timing, subprocess workers, free ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"


@dataclass
class BenchResult:
    """One benchmark on one database. `ratio` is ours ÷ floor for times and floor ÷ ours
    for rates, so lower is better everywhere except where `higher_is_better`."""

    name: str
    database: str
    ours: float
    floor: float
    unit: str
    goal: str
    met: bool
    ratio: float = 0.0
    extra: dict = field(default_factory=dict)

    def line(self) -> str:
        extra = " ".join(f"{key}={value}" for key, value in self.extra.items())
        return (f"{self.name}: ratio={self.ratio:.2f} ours={self.ours:.4g} "
                f"floor={self.floor:.4g} [{self.unit}; {self.database}; goal {self.goal}: "
                f"{'met' if self.met else 'MISSED'}]" + (f" {extra}" if extra else ""))


def median_time(function: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def run_worker(module: str, *args: str, env: dict | None = None, timeout: float = 3600) -> dict:
    """Run `python -m module args…` and read the JSON its last output line holds."""
    environ = dict(os.environ)
    environ.update(env or {})
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_results(results: list[BenchResult], meta: dict) -> None:
    RESULTS.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]},
                                  indent=2) + "\n")
