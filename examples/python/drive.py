"""A tank drive, written the way a team writes its robot code for `pitcrew run`.

    scripts/supervise --emulate --run "pitcrew run examples/python/drive.py"

`pitcrew run` gives this module two globals: `Robot` (get_value, set_value, devices, mode,
enabled, match_time_left) and `Gamepad` (the driver's gamepad 0: get_value, connected).
It calls autonomous_setup() once when the robot is enabled in autonomous and then
autonomous_main() every 20 ms; the same for teleop, where teleop_main() also runs at once
when the gamepad changes; nothing while disabled. Writes made in
a main are sent when it returns, and a motor not written for 100 ms (the output lease)
stops, so every main writes both motors.

The motors are every koala-bear found (`Robot.devices()`), so no UID is needed; with a
robot file (`--robot examples/python/robot.yaml`) name them there instead.
"""

import logging
import time

SLOW_SCALE = 0.3  # button A toggles this scale
AUTO_DUTY = 0.5  # autonomous: both motors at this for AUTO_SECONDS, then stop
AUTO_SECONDS = 1.0

log = logging.getLogger("drive")
motors = []
slow = False
a_was_down = False
auto_start = 0.0


def find_motors():
    """Every koala-bear the broker knows."""
    global motors
    motors = [d["uid"] for d in Robot.devices() if d["type"] == "koala-bear" and d["connected"]]
    log.info("driving %d koala-bear(s): %s", len(motors), ", ".join(motors))


def drive(left, right):
    for uid in motors:
        Robot.set_value(uid, "duty_cycle_a", left)
        Robot.set_value(uid, "duty_cycle_b", right)


def autonomous_setup():
    global auto_start
    find_motors()
    auto_start = time.monotonic()


def autonomous_main():
    if time.monotonic() - auto_start < AUTO_SECONDS:
        drive(AUTO_DUTY, AUTO_DUTY)
    else:
        drive(0.0, 0.0)


def teleop_setup():
    find_motors()


def teleop_main():
    global slow, a_was_down
    a_down = Gamepad.get_value("button_a")
    if a_down and not a_was_down:  # toggle on the press, not while held
        slow = not slow
        log.info("slow mode %s", "on" if slow else "off")
    a_was_down = a_down
    scale = SLOW_SCALE if slow else 1.0
    left = max(-1.0, min(1.0, Gamepad.get_value("joystick_left_y") * scale))
    right = max(-1.0, min(1.0, Gamepad.get_value("joystick_right_y") * scale))
    drive(left, right)
