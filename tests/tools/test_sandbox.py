"""The code sandbox: the contract every backend keeps, and the security suite, in which
the "code" attacks its sandbox and every attempt must be contained, with the next
snippet running normally. Backends that cannot run here are skipped with the reason."""

from __future__ import annotations

import os
import subprocess
import warnings

import pytest
from agentrl.tools.sandbox import (
    Limits,
    RunResult,
    SandboxUnavailable,
    make_sandbox,
    sandbox_status,
)

from agentrl.errors import InvalidArgument

SECRET = "AGENTRL_TEST_SECRET"
LIMITS = Limits(timeout_s=3.0, memory_mb=512, processes=16, file_mb=8, scratch_mb=32)


def open_sandbox(backend: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the process backend's warning
        try:
            return make_sandbox(backend, workers=1, limits=LIMITS)
        except SandboxUnavailable as exc:
            pytest.skip(f"{backend} sandbox unavailable here: {exc}")


@pytest.fixture(scope="module", params=["bwrap", "docker", "process"])
def sandbox(request):
    os.environ[SECRET] = "hunter2"  # what a sandbox must not hand the code
    box = open_sandbox(request.param)
    yield box
    box.close()
    os.environ.pop(SECRET, None)


@pytest.fixture(scope="module", params=["bwrap", "docker"])
def isolated(request):
    os.environ[SECRET] = "hunter2"
    box = open_sandbox(request.param)
    yield box
    box.close()
    os.environ.pop(SECRET, None)


def assert_next_runs(box) -> None:
    result = box.run("print(sum(range(10)))")
    assert result.ok and result.stdout == "45\n", result


# -- the contract ---------------------------------------------------------------------------


def test_output_exit_status_and_errors(sandbox):
    result = sandbox.run("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert (result.stdout, result.stderr, result.exit_code, result.ok) == (
        "out\n",
        "err\n",
        0,
        True,
    )
    failed = sandbox.run("1 / 0")
    assert failed.exit_code == 1 and "ZeroDivisionError" in failed.stderr and not failed.ok
    assert "<cell>" in failed.stderr and "sandbox_server" not in failed.stderr
    assert sandbox.run("raise SystemExit(3)").exit_code == 3
    assert sandbox.run("pass").observation() == "(no output)"


def test_a_session_replays_earlier_cells_silently(sandbox):
    cells = ["x = 40", "print('noise')", "1 / 0", "x += 2"]  # a failing cell does not stop it
    result = sandbox.run("print(x)", cells=cells)
    assert result.stdout == "42\n" and result.stderr == ""
    assert "NameError" in sandbox.run("print(x)").stderr  # nothing kept between calls


def test_timeouts_and_output_budget(sandbox):
    result = sandbox.run("while True:\n    pass", timeout_s=1.0)
    assert result.timed_out and not result.ok and 0.9 < result.wall_s < 3.0
    assert "Timed out" in result.observation()
    loud = sandbox.run("print('x' * 100_000)")
    assert loud.truncated and len(loud.stdout) == LIMITS.output_chars
    assert_next_runs(sandbox)


def test_memory_is_bounded(sandbox):
    result = sandbox.run("x = bytearray(4 * 1024 ** 3)")
    assert result.out_of_memory and not result.ok and "Out of memory" in result.observation()
    assert_next_runs(sandbox)


def test_a_bad_backend_name_is_refused():
    with pytest.raises(InvalidArgument, match="bwrap, docker, process"):
        make_sandbox("firejail")


def test_status_names_every_backend():
    status = sandbox_status()
    assert set(status) == {"bwrap", "docker", "process"}
    assert all(v.startswith(("ok", "unavailable", "broken")) for v in status.values())


# -- the security suite (isolating backends) -------------------------------------------------


def test_no_network(isolated):
    code = "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)"
    result = isolated.run(code)
    assert not result.ok and "OSError" in result.stderr
    assert_next_runs(isolated)


def test_no_writes_outside_the_scratch_folder(isolated):
    for path in ("/usr/evil", "/etc/evil", os.path.realpath(__file__) + ".evil"):
        result = isolated.run(f"open({path!r}, 'w').write('x')")
        assert not result.ok and ("Error" in result.stderr), (path, result)
        assert not os.path.exists(path)
    assert isolated.run("open('notes.txt', 'w').write('ok')").ok  # its own folder works
    assert_next_runs(isolated)


def test_no_reading_the_host(isolated):
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    for path in (os.path.realpath(readme), os.path.expanduser("~/.bashrc"), "/etc/shadow"):
        result = isolated.run(f"print(open({path!r}).read()[:50])")
        assert not result.ok and result.stdout == "", (path, result)
    env = isolated.run("import os\nprint(sorted(os.environ))")
    assert SECRET not in env.stdout and "hunter2" not in env.stdout
    assert_next_runs(isolated)


def test_a_fork_bomb_is_contained(isolated):
    result = isolated.run("import os\nwhile True:\n    os.fork()", timeout_s=3.0)
    assert not result.ok
    leftover = isolated.run(
        "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))"
    )
    assert leftover.ok and int(leftover.stdout) <= 4  # init, server, this child
    assert_next_runs(isolated)


def test_no_disk_filling(isolated):
    code = "chunk = b'x' * (1 << 20)\n"
    code += "for i in range(10_000):\n    open(f'big{i}', 'wb').write(chunk * 4)"
    result = isolated.run(code)
    assert not result.ok and "No space left" in result.stderr  # the scratch folder is full
    assert_next_runs(isolated)


def test_no_background_process_survives(isolated):
    code = (
        "import subprocess\n"
        "subprocess.Popen(['sleep', '3187'], start_new_session=True)\n"
        "import os\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    import time\n"
        "    time.sleep(3187)\n"
        "print('left')"
    )
    assert isolated.run(code).stdout == "left\n"
    leftover = isolated.run(
        "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))"
    )
    assert int(leftover.stdout) <= 4
    host = subprocess.run(["pgrep", "-f", "sleep 3187"], capture_output=True, text=True)
    assert host.stdout.strip() == ""


def test_the_parent_cannot_be_killed(isolated):
    for code in (
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        "import os, signal\nos.kill(1, signal.SIGKILL)",
        "import os, signal\nos.killpg(0, signal.SIGKILL)",
    ):
        result = isolated.run(code)
        assert result.error is None  # the worker survived: nothing had to be replaced
        assert_next_runs(isolated)


def test_a_dead_worker_is_replaced():
    box = open_sandbox("bwrap")
    try:
        worker = box._take()
        worker.process.kill()  # the server dies under a request
        box._give_back(worker)
        result = box.run("print(1)")
        assert result.error is not None and not result.ok
        assert "Sandbox error" in result.observation()
        assert_next_runs(box)
    finally:
        box.close()


def test_results_are_plain_data():
    result = RunResult("a\n", "", 0)
    assert result.ok and result.observation() == "a"


def test_a_worker_started_from_a_thread_that_ended_lives_on():
    # bwrap's --die-with-parent fires when the thread that started it ends: workers are
    # started from one long-lived thread, so a rollout pool's thread may come and go.
    import threading

    box = open_sandbox("bwrap")
    try:
        thread = threading.Thread(target=lambda: box.run("pass"))
        thread.start()
        thread.join()
        result = box.run("print(sum(range(10)))")
        assert result.error is None and result.stdout == "45\n"
    finally:
        box.close()


def test_a_long_lived_worker_does_not_collect_file_descriptors(sandbox):
    for _ in range(200):
        sandbox.run("pass")
    result = sandbox.run("import os\nprint(len(os.listdir('/proc/self/fd')))")
    assert result.ok and int(result.stdout) < 10  # stdio, its output files, the listing


def test_runs_share_nothing(isolated):
    # one run's output is not in the next run's process, and System V shared memory
    # made by one run is gone for the next (each run has its own IPC namespace)
    isolated.run("print('secret-' + str(6 * 7 * 1000))")  # the marker is not in the code
    code = (
        "import sys\n"
        "frames, f = [], sys._getframe()\n"
        "while f:\n"
        "    frames.append(repr(f.f_locals))\n"
        "    f = f.f_back\n"
        "print(('secret-' + str(42000)) in ''.join(frames))"
    )
    assert isolated.run(code).stdout == "False\n"
    make = "import ctypes\nprint(ctypes.CDLL(None).shmget(4321, 4096, 0o1666))"
    find = "import ctypes\nprint(ctypes.CDLL(None).shmget(4321, 4096, 0o666))"
    assert int(isolated.run(make).stdout) >= 0
    assert isolated.run(find).stdout == "-1\n"


def test_a_seeded_session_draws_the_same_numbers(sandbox):
    draw = "import random\nx = random.random()"
    first = sandbox.run(draw + "\nprint(x)", seed=7).stdout
    assert sandbox.run("print(x)", cells=[draw], seed=7).stdout == first  # replayed alike
    assert sandbox.run(draw + "\nprint(x)", seed=8).stdout != first


def test_a_worker_that_cannot_be_replaced_wakes_the_waiters():
    import threading

    box = open_sandbox("bwrap")
    try:
        worker = box._take()
        worker.process.kill()
        box._give_back(worker)

        def fail():
            raise SandboxUnavailable("no more sandboxes")

        box._spawn = fail
        outcomes = []

        def run():
            try:
                outcomes.append(box.run("print(1)").error)
            except SandboxUnavailable as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=run) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert not any(t.is_alive() for t in threads) and len(outcomes) == 3
        assert box._started == 0
    finally:
        box.close()
