"""Benchmark of the pitcrew package's hot path: Robot.get_value and Robot.set_value on a
koala-bear played by `pitcrew emulate`, through the real device broker's buffer (so a write
also wakes the broker, as on a robot). Prints one JSON line per figure, like the other
benchmarks of scripts/bench:

    {"bench":"python_get_value_ns","p50":..,"p99":..,"samples":..}

Each sample is the mean of a batch of calls in a plain Python loop (loop overhead
included). Target: p50 at most 1000 ns for each.

    PITCREW_BIN_DIR=target/release python3 crates/python/bench/values.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import Devices, koala_uid  # noqa: E402  (the tests' suite harness)

BATCH = 200
SAMPLES = 2000


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[round((len(sorted_values) - 1) * p)]


def report(name: str, samples: list[float]) -> None:
    samples.sort()
    print(
        json.dumps(
            {
                "bench": name,
                "p50": round(percentile(samples, 0.5), 1),
                "p99": round(percentile(samples, 0.99), 1),
                "samples": len(samples),
            },
            separators=(",", ":"),
        ),
        flush=True,
    )


def get_samples(robot) -> list[float]:
    samples, clock, get, batch = [], time.perf_counter_ns, robot.get_value, range(BATCH)
    for _ in range(SAMPLES):
        started = clock()
        for _ in batch:
            get("left_drive", "duty_cycle_a")
        samples.append((clock() - started) / BATCH)
    return samples


def set_samples(robot) -> list[float]:
    samples, clock, put, batch = [], time.perf_counter_ns, robot.set_value, range(BATCH)
    for _ in range(SAMPLES):
        started = clock()
        for _ in batch:
            put("left_drive", "duty_cycle_a", 0.25)
        samples.append((clock() - started) / BATCH)
    return samples


def main() -> None:
    uid = koala_uid(31337)
    with tempfile.TemporaryDirectory() as tmp:
        robot_file = Path(tmp) / "robot.yaml"
        robot_file.write_text(f"left_drive: koala-bear {uid}\n")
        suite = Devices("bench", f"koala-bear:{uid}", robot_file=robot_file)
        try:
            suite.wait_connected(uid)
            get_samples(suite.robot)  # warm up
            report("python_get_value_ns", get_samples(suite.robot))
            report("python_set_value_ns", set_samples(suite.robot))
        finally:
            suite.close()


if __name__ == "__main__":
    main()
