"""``scripts/bench sim``: how much faster than real time ``pitcrew.sim`` runs a match.

Prints one JSON line: ``sim_realtime_factor`` (simulated seconds per wall second) for a
whole match (15 s autonomous, 135 s teleop) of ``examples/python/drive.py`` on the example
robot, best of three; goal at least 100.
"""

import json
import time
from pathlib import Path

from pitcrew.sim import Simulation

ROOT = Path(__file__).resolve().parents[3]
best = 0.0
for _ in range(3):
    sim = Simulation(ROOT / "examples/sim/robot.yaml", ROOT / "examples/python/drive.py")
    sim.gamepad(joystick_left_y=0.4, joystick_right_y=0.3)
    started = time.perf_counter()
    sim.match(autonomous=15, teleop=135)
    wall = time.perf_counter() - started
    best = max(best, sim.time / wall)
print(json.dumps({"bench": "sim_realtime_factor", "factor": round(best, 1), "match_s": 150}))
