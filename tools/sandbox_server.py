"""The fork server that runs inside a sandbox: it imports the usual modules once, then
forks a child per request, which drops privileges, applies the resource limits and runs
the code. Run as `python -I sandbox_server.py CONFIG_JSON`; it reads one JSON request per
line on stdin and writes one JSON answer per line on stdout.

    request: {"code": "...", "cells": ["...", ...], "timeout_s": 5}
    answer:  {"stdout": "...", "stderr": "...", "exit_code": 0, "timed_out": false,
              "wall_s": 0.01, "truncated": false}

`cells` are an episode's earlier cells: the child runs them first, output discarded,
so the code sees their variables (a stateful session by replay; nothing is kept between
requests). After each request every process but the server is killed, so nothing the
code started survives it. This file uses the standard library only: it runs under the
sandboxed interpreter, outside agentrl.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import resource
import select
import shutil
import signal
import sys
import time
import traceback

SCRATCH = OUT = ERR = ""


def main() -> None:
    global SCRATCH, OUT, ERR
    config = json.loads(sys.argv[1])
    root = config.get("tmp", "/tmp")  # the sandbox's own /tmp, or a private host folder
    out = config.get("out", root)  # output files apart: a full scratch keeps its traceback
    SCRATCH, OUT, ERR = f"{root}/work", f"{out}/.stdout", f"{out}/.stderr"
    sys.path.extend(config.get("paths", []))
    for name in config.get("preload", []):
        with contextlib.suppress(Exception):  # a module the sandbox lacks: not preloaded
            __import__(name)
    if "numpy" in sys.modules:  # numpy imports it lazily (~20 ms); children seed it
        import numpy.random  # noqa: F401
    # Not dumpable: code running under the server's own uid (bwrap without root) cannot
    # open its /proc/<pid>/fd (the protocol pipes) or attach to it.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    channel_in, channel_out = sys.stdin.buffer, sys.stdout.buffer
    channel_out.write(b'{"ready": true}\n')
    channel_out.flush()
    for line in channel_in:
        reply = json.dumps(run(json.loads(line), config)).encode() + b"\n"
        channel_out.write(reply)
        channel_out.flush()
        # The next child is forked from this frame: it must not find this run's request
        # or answer (another episode's code and output) among its locals.
        del line, reply


def run(request: dict, config: dict) -> dict:
    shutil.rmtree(SCRATCH, ignore_errors=True)  # normally already gone (below)
    os.mkdir(SCRATCH, 0o700)
    uid = config.get("uid")
    if uid is not None:
        os.chown(SCRATCH, uid, uid)
    timeout = float(request.get("timeout_s") or config["timeout_s"])
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        child(request, config, timeout)
    timed_out, status = wait(pid, timeout)
    wall = time.monotonic() - started
    if config.get("sweep"):  # its own PID and IPC namespaces: the rest is the code's
        kill_the_rest()
        remove_ipc()
    else:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    # this run's mess is cleaned in this run, not charged to the next one
    shutil.rmtree(SCRATCH, ignore_errors=True)
    limit = int(config["output_bytes"])
    stdout, cut_out = read(OUT, limit)
    stderr, cut_err = read(ERR, limit)
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
    else:
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    return {
        "stdout": stdout,
        "stderr": stderr,
        "exit_code": code,
        "timed_out": timed_out,
        "wall_s": wall,
        "truncated": cut_out or cut_err,
    }


def child(request: dict, config: dict, timeout: float) -> None:
    try:
        os.setsid()  # its own process group: the server kills it whole
        null = os.open(os.devnull, os.O_RDWR)
        out = os.open(OUT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(ERR, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.chdir(SCRATCH)
        uid = config.get("uid")
        if uid is not None:  # an unprivileged uid of its own: RLIMIT_NPROC holds for it
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        limits = config["limits"]
        cpu = int(timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        for name, value in limits.items():
            resource.setrlimit(getattr(resource, name), (value, value))
        os.environ.clear()
        os.environ.update({"HOME": SCRATCH, "PATH": "/usr/local/bin:/usr/bin:/bin"})
        seed = int(request.get("seed", 0))
        random.seed(seed)  # a replayed session draws what it drew the first time
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed(seed % 2**32)
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        cells = [*request.get("cells", []), request["code"]]
        for index, cell in enumerate(cells):
            last = index == len(cells) - 1
            os.dup2(out if last else null, 1)
            os.dup2(err if last else null, 2)
            try:
                exec(compile(cell, "<cell>", "exec"), namespace)
            except SystemExit as exc:
                if last:
                    sys.stdout.flush()
                    code = exc.code if isinstance(exc.code, int) else (exc.code is not None)
                    os._exit(int(code))
            except BaseException as exc:
                if last:  # the traceback from the cell on, without the server's frame
                    traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
                    sys.stderr.flush()
                    sys.stdout.flush()
                    os._exit(1)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
        os._exit(0)
    except BaseException:
        os._exit(70)


def wait(pid: int, timeout: float) -> tuple[bool, int]:
    """Wait for the child at most `timeout` seconds; kill its group after that."""
    deadline = time.monotonic() + timeout
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):
        handle = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return False, status
            left = deadline - time.monotonic()
            if left <= 0:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                return True, os.waitpid(pid, 0)[1]
            if handle is not None:
                select.select([handle], [], [], left)
            else:
                time.sleep(min(left, 0.001))
    finally:
        if handle is not None:  # one per run: a long-lived server must not collect them
            os.close(handle)


def kill_the_rest() -> None:
    """Kill every process of the sandbox but the server and its ancestors (anything the
    code left running, in its group or not), then reap what is ours."""
    keep = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
        keep.add(pid)
    keep.add(1)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # a process may fork while being killed: sweep on
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep]
        if not others:
            break
        for other in others:  # zombies too: killing them is harmless, init reaps them
            with contextlib.suppress(OSError):
                os.kill(other, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(0.0005)
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break


def remove_ipc() -> None:
    """Remove the System V shared memory, semaphores and message queues the code made
    (the sandbox's IPC namespace is the worker's: without this they would outlive the
    run, visible to the next episode and outside every memory limit). A namespace per
    run would do it too, but creating one costs about 15 ms."""
    libc = ctypes.CDLL(None, use_errno=True)
    for kind, remove in (
        ("shm", lambda i: libc.shmctl(i, 0, None)),  # IPC_RMID
        ("sem", lambda i: libc.semctl(i, 0, 0)),
        ("msg", lambda i: libc.msgctl(i, 0, None)),
    ):
        try:
            with open(f"/proc/sysvipc/{kind}") as table:
                rows = table.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            with contextlib.suppress(Exception):
                remove(int(row.split()[1]))


def read(path: str, limit: int) -> tuple[str, bool]:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return "", False
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


if __name__ == "__main__":
    main()
