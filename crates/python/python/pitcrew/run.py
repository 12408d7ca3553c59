"""``pitcrew run CODE.py``: the executor of a team's Python robot code.

It follows the robot state: when the robot is enabled in ``autonomous`` it calls the code's
``autonomous_setup()`` once and then ``autonomous_main()`` every ``--period``; the same for
``teleop`` (``teleop_setup``, ``teleop_main``), where ``teleop_main`` also runs at once
when the driver's gamepad changes (the worker sleeps on the gamepad buffer's futex, as
``pitcrew-teleop`` does, so a stick change reaches the motors without waiting for the
period); while disabled it calls nothing. The code
runs in a worker process (``pitcrew._worker``) so that nothing it does takes the executor
down:

* an exception is logged (app ``run-<file stem>``, with the traceback and the student's
  file and line) and stops that mode's loop until the next enable;
* a call that takes longer than ``--timeout`` has its worker killed (SIGKILL: the broker
  sees the writer die and drives its outputs safe; the lease would anyway) and a new
  worker started, which runs the mode's setup again and carries on;
* a syntax error (or any failure to load) is one log line; the executor waits for the
  file to change and the next enable;
* the file is loaded again at an enable after it changed;
* everything the code starts belongs to its worker: the executor is a child subreaper
  (``PR_SET_CHILD_SUBREAPER``), so a process the code starts stays its descendant even
  when it detaches (a new session, a double fork), and whenever a worker ends (the
  timeout, a reload, ``pitcrew run`` stopping) every descendant is killed with it. A
  process the code started can never drive a motor after its worker is gone.

Writes a ``main`` makes are sent when it returns (see ``pitcrew._worker``).

    python3 -m pitcrew.run CODE.py [--robot robot.yaml] [--period 20ms] [--timeout 1s]

SIGTERM or SIGINT stops the worker and exits 0. A bad option is a one-line error, exit 2.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from typing import Optional

import pitcrew

log = logging.getLogger("pitcrew.run")

USAGE = "usage: pitcrew run CODE.py [--robot robot.yaml] [--period 20ms] [--timeout 1s]"


class UsageError(Exception):
    """A bad command line; its message is the one line printed."""


def parse_duration(option: str, text: str) -> float:
    """``250ms``, ``1s``, ``1.5s``, ``2m``, ``500us`` or plain seconds; more than zero."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|us|s|m)?\s*", text)
    if not m:
        raise UsageError(f"invalid value {text!r} for {option}: expected a duration such as 20ms or 1s")
    scale = {"ms": 1e-3, "us": 1e-6, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
    value = float(m.group(1)) * scale
    if not 0 < value <= 3600:
        raise UsageError(f"invalid value {text!r} for {option}: expected more than 0 and at most 1 h")
    return value


def parse_args(argv: list[str]) -> dict:
    """The options, validated (no I/O but the code file's existence)."""
    opts: dict = {"code": None, "robot": None, "period": 0.02, "timeout": 1.0}
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name in ("--robot", "--period", "--timeout"):
            if not eq:
                value = next(it, None)
                if value is None:
                    raise UsageError(f"{name} needs a value")
            key = name[2:]
            opts[key] = value if key == "robot" else parse_duration(name, value)
        elif arg in ("-h", "--help"):
            print(USAGE)
            sys.exit(0)
        elif arg.startswith("-"):
            raise UsageError(f"unexpected argument {arg!r}")
        elif opts["code"] is None:
            opts["code"] = arg
        else:
            raise UsageError(f"unexpected argument {arg!r} (one code file)")
    if opts["code"] is None:
        raise UsageError("the code file is missing; " + USAGE)
    if not os.path.isfile(opts["code"]):
        raise UsageError(f"no file {opts['code']}")
    return opts


PR_SET_CHILD_SUBREAPER = 36
#: How long ``kill_descendants`` keeps sweeping for processes forked meanwhile.
KILL_SWEEP_SECONDS = 2.0


def become_subreaper() -> bool:
    """Makes orphans among this process's descendants its children rather than init's, so
    no process team code starts can leave the executor's tree (Linux 3.4 and later)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process, from ``/proc``."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and fields[0] != b"Z":
            parents[int(entry)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    """The live descendants of ``root``."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def reap_orphans(keep: Optional[int]) -> None:
    """Reaps this process's exited children other than ``keep`` (the worker, whose
    ``Popen`` reaps it): orphans of team code that the subreaper inherited."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == keep:
            return
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            return


def kill_descendants(keep: Optional[int] = None) -> int:
    """SIGKILLs every descendant of this process but ``keep`` and reaps them, sweeping
    again until none is left (a process may fork between a sweep and its kill; its child
    is then found by the next sweep, the subreaper keeping it in the tree). Returns how
    many were killed."""
    killed = 0
    deadline = time.monotonic() + KILL_SWEEP_SECONDS
    while time.monotonic() < deadline:
        alive = [pid for pid in descendants(os.getpid()) if pid != keep]
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        reap_orphans(keep)
        time.sleep(0.001)
    reap_orphans(keep)
    return killed


class Worker:
    """One worker process and its two pipes."""

    def __init__(self, code: str, app: str, robot_file: Optional[str]) -> None:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        cmd = [sys.executable, "-m", "pitcrew._worker", code, str(to_r), str(from_w), app]
        if robot_file:
            cmd.append(robot_file)
        self.proc = subprocess.Popen(cmd, pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._out = os.fdopen(to_w, "w")
        self._in = from_r
        self._buf = b""
        #: The worker closed its answers pipe (it died or exited).
        self.eof = False

    def answer(self, timeout: float) -> Optional[dict]:
        """The next answer, or ``None`` when none came in ``timeout`` or the worker died."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                return None
            chunk = os.read(self._in, 65536)
            if not chunk:
                self.eof = True
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def call(self, name: str, timeout: float, wait: float = 0.0) -> Optional[dict]:
        """Calls ``name`` in the worker (at the next gamepad change or after ``wait``
        seconds, when ``wait``); ``None`` when it did not answer within ``wait + timeout``."""
        request = {"call": name, "wait": wait} if wait > 0 else {"call": name}
        try:
            self._out.write(json.dumps(request) + "\n")
            self._out.flush()
        except (BrokenPipeError, OSError):
            return None
        return self.answer(wait + timeout)

    def kill(self, grace: float = 0.0) -> None:
        """Closes the requests pipe (an idle worker then exits by itself, delivering its
        last log records), waits up to ``grace`` seconds, then SIGKILLs and reaps."""
        try:
            self._out.close()
        except OSError:
            pass
        if grace > 0:
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        killed = kill_descendants()
        if killed:
            log.warning(
                "the worker (pid %d) left %d process%s behind: killed", self.proc.pid,
                killed, "" if killed == 1 else "es",
            )
        try:
            os.close(self._in)
        except OSError:
            pass


class Executor:
    """Follows the robot state and drives the worker."""

    def __init__(self, opts: dict) -> None:
        self.code = os.path.abspath(opts["code"])
        self.robot_file = opts["robot"]
        self.period = opts["period"]
        self.timeout = opts["timeout"]
        self.app = "run-" + os.path.splitext(os.path.basename(self.code))[0]
        self.robot = pitcrew.Robot()
        self.worker: Optional[Worker] = None
        self.loaded_stat: Optional[tuple] = None
        self.failed_stat: Optional[tuple] = None
        self.stopping = False

    def _stat(self) -> Optional[tuple]:
        try:
            st = os.stat(self.code)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def stop_worker(self, grace: float = 0.0) -> None:
        """Ends the worker: SIGKILL after ``grace`` seconds (see ``Worker.kill``)."""
        if self.worker is not None:
            self.worker.kill(grace)
            self.worker = None

    def ensure_worker(self, reload: bool) -> bool:
        """A live worker, with the file loaded again if it changed and ``reload`` (at an
        enable: an edit waits for the next one); False when it does not load."""
        stat = self._stat()
        alive = self.worker is not None and self.worker.proc.poll() is None
        if alive and (stat == self.loaded_stat or not reload):
            return True
        if stat is not None and stat == self.failed_stat:
            return False  # logged once already; wait for the file to change
        self.stop_worker()
        if stat != self.loaded_stat and self.loaded_stat is not None:
            log.info("%s changed: loading it again", os.path.basename(self.code))
        self.worker = Worker(self.code, self.app, self.robot_file)
        got = self.worker.answer(max(self.timeout, 10.0))
        if got is None or not got.get("ok"):
            if got is None:
                log.error("loading %s: the worker did not answer", os.path.basename(self.code))
            self.stop_worker(grace=1.0)
            self.failed_stat, self.loaded_stat = stat, None
            return False
        self.loaded_stat, self.failed_stat = stat, None
        return True

    def call(self, name: str, wait: float = 0.0) -> str:
        """Calls ``name``: ``"ok"``, ``"error"`` (raised, logged by the worker; or the
        worker died, which stops the loop like an exception rather than restarting it
        every period) or ``"killed"`` (past the timeout; a new worker is started)."""
        assert self.worker is not None
        reap_orphans(self.worker.proc.pid)
        got = self.worker.call(name, self.timeout, wait)
        if got is None:
            dead = self.worker.eof or self.worker.proc.poll() is not None
            pid = self.worker.proc.pid
            self.stop_worker()
            self.loaded_stat = None
            if dead:
                log.error(
                    "%s: the worker (pid %d) died; a new one starts at the next enable", name, pid
                )
                return "error"
            log.error(
                "%s took longer than %.3gs: killed the worker (pid %d); starting a new one",
                name, self.timeout, pid,
            )
            return "killed"
        return "ok" if got.get("ok") else "error"

    def wait(self, seconds: float) -> None:
        """Sleeps up to ``seconds``, waking early on a change of the robot state."""
        if seconds > 0:
            self.robot.wait_for_change(seconds)

    def run_mode(self, mode: str) -> None:
        """One enable in ``mode``: setup, then main every period (and in teleop at each
        gamepad change), until the mode ends."""
        setup_done = just_set_up = False
        next_at = time.monotonic()
        enable = self._transitions()
        while not self.stopping and self.robot.mode == mode and self._transitions() == enable:
            if not self.ensure_worker(reload=not setup_done):
                self._idle(mode)
                return
            if not setup_done:
                result = self.call(f"{mode}_setup")
                if result == "killed":
                    continue
                if result == "error":
                    self._idle(mode)
                    return
                setup_done = True
                just_set_up = True  # the first main runs at once
                next_at = time.monotonic()
            # In teleop the worker itself waits for the gamepad, up to a period, before
            # calling main (waiting there rather than here saves a process wake-up between
            # the stick and the motors); a change of the robot state is then seen within a
            # period (the broker's gate has already stopped the outputs).
            teleop = mode == "teleop"
            wait = self.period if teleop and not just_set_up else 0.0
            just_set_up = False
            result = self.call(f"{mode}_main", wait)
            if result == "killed":
                setup_done = False  # a fresh worker: its setup runs again
                continue
            if result == "error":
                self._idle(mode)
                return
            if not teleop:
                next_at += self.period
                now = time.monotonic()
                if next_at < now:
                    next_at = now
                self.wait(next_at - now)

    def _transitions(self) -> int:
        """The broker's transition count: a new enable in the same mode changes it."""
        return int(self.robot.state().get("transitions", 0))

    def _idle(self, mode: str) -> None:
        """Waits for the end of this enable (the loop is stopped until the next one)."""
        enable = self._transitions()
        while not self.stopping and self.robot.mode == mode and self._transitions() == enable:
            self.robot.wait_for_change(0.5)

    def run(self) -> None:
        """Follows the robot state until SIGTERM/SIGINT."""
        log.info(
            "running %s every %.3gs (timeout %.3gs)", self.code, self.period, self.timeout
        )
        while not self.stopping:
            mode = self.robot.mode
            if mode is None:
                self.robot.wait_for_change(0.5)
                continue
            self.run_mode(mode)


def log_locally() -> None:
    """Records at info and above on stderr too (the supervisor keeps a controller's
    stderr), one line each; the forwarder gets them with their tracebacks."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the executor; the exit status."""
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"pitcrew run: {e}", file=sys.stderr)
        return 2
    if not become_subreaper():
        print("pitcrew run: cannot become a child subreaper: processes the code starts may outlive it",
              file=sys.stderr)
    executor = Executor(opts)
    log_locally()
    pitcrew.log_to_forwarder(app=executor.app)

    def stop(signum: int, _frame: object) -> None:
        executor.stopping = True
        executor.stop_worker(grace=0.5)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        executor.run()
    finally:
        executor.stop_worker()
    return 0


if __name__ == "__main__":
    sys.exit(main())
