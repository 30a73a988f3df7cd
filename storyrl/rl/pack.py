"""Several RL runs on one GPU: a pack of runs trained side by side by one job.

Each run is its own `storyrl rl train` process with its own folder, seeds, teacher cache and log,
so it writes what it would write alone. Runs whose teacher is the offline vLLM engine (one engine
per process would hold the 8B weights K times) ask one teacher server instead, started here on a
free localhost port (`rl_sharing.server.command`, by default `vllm serve`) and asked through the
`openai` backend with every request of a step in flight: while one run samples or updates, the
server answers the others. The backend sends temperature, top_p, max_tokens and the run's seed
with every request and `vllm serve --generation-config vllm` keeps the model's generation_config
out of the rest, so a reply depends on the request alone, as with the engine.

SIGTERM (a job's time limit) is passed on to every run, which saves its state after the step in
flight and exits 143 (storyrl.rl.run.Terminate); the server is stopped once the runs have
exited. If the server dies, the runs are stopped the same way and the pack fails naming its log.
SLURM's time-limit SIGTERM reaches every process of the job, the server too: teacher calls of
a step in flight that come after the server stopped fail, and `teacher.on_failure` decides
as for any failed call (`stop`: above `max_failure_share` the step is dropped and the run
resumes from its last saved state; below it, and with `default`, those stories score 0.5).
"""

import json
import logging
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from storyrl.config import RLConfig, RLSharingConfig, TeacherConfig
from storyrl.config.sharing import max_batched_tokens, server_key

log = logging.getLogger(__name__)


class PackRun(BaseModel):
    """One run of a pack: the arguments of its `storyrl rl train`, and its log file."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    section: dict
    teacher: dict
    reward: dict = {}
    checkpoint: str
    output: str
    log: str
    teacher_cache: str | None = None
    pretrain_words: int | None = None
    corpus_stats: str | None = None


class PackError(RuntimeError):
    """The pack could not run: its server did not come up or died (the message names its log)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_argv(
    sharing: RLSharingConfig, teacher: TeacherConfig, port: int, max_seqs: int
) -> list[str]:
    values = {
        "model": teacher.model,
        "port": port,
        "dtype": teacher.vllm.dtype,
        "max_model_len": teacher.vllm.max_model_len,
        "max_seqs": max_seqs,
        "max_batched_tokens": max_batched_tokens(max_seqs),
        "gpu_memory_utilization": sharing.server.gpu_memory_utilization,
    }
    return shlex.split(sharing.server.command.format(**values))


def shared_teacher(teacher: dict, base_url: str, label: str, concurrency: int) -> dict:
    """The run's teacher section, asking the pack's server through the `openai` backend."""
    o = {
        **teacher.get("openai", {}),
        "base_url": base_url,
        "concurrency": concurrency,
        "server_label": label,
        "api_key_env": None,
    }
    return {**teacher, "backend": "openai", "openai": o}


def train_argv(
    run: PackRun, teacher: dict, require_gpu: bool, progress_fd: int | None = None
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "storyrl.cli",
        "rl",
        "train",
        "--section",
        json.dumps(run.section),
        "--teacher",
        json.dumps(teacher),
        "--reward",
        json.dumps(run.reward),
        "--checkpoint",
        run.checkpoint,
        "--output",
        run.output,
        "--run-id",
        run.run_id,
        # A pack reruns when a run's settings change: like the `rl` rule, start those afresh.
        "--on-change",
        "move",
    ]
    for flag, value in (
        ("--teacher-cache", run.teacher_cache),
        ("--pretrain-words", run.pretrain_words),
        ("--corpus-stats", run.corpus_stats),
    ):
        if value is not None:
            argv += [flag, str(value)]
    if progress_fd is not None:
        argv += ["--progress-fd", str(progress_fd)]
    return argv + (["--require-gpu"] if require_gpu else [])


def tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class Server:
    """The teacher server: started, waited for, stopped."""

    def __init__(self, argv: list[str], log_path: Path):
        self.argv, self.log_path = argv, Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log.info("teacher server: %s", shlex.join(argv))
        with self.log_path.open("ab") as out:
            try:
                self.proc = subprocess.Popen(
                    argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            except OSError as err:
                raise PackError(
                    f"cannot start the teacher server `{argv[0]}`: {err.strerror} "
                    "(rl_sharing.server.command)"
                ) from None
        log.info("teacher server: pid %d, log %s", self.proc.pid, self.log_path)

    def failure(self, what: str) -> PackError:
        return PackError(
            f"the teacher server {what}; the last lines of {self.log_path}:\n{tail(self.log_path)}"
        )

    def wait_ready(self, base_url: str, timeout_s: float, stop=lambda: False) -> bool:
        """True once the server answers; False if `stop()` said to give up first."""
        deadline = time.monotonic() + timeout_s
        while not stop():
            if self.proc.poll() is not None:
                raise self.failure(f"exited with status {self.proc.returncode} before it answered")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise self.failure(
                    f"did not answer {base_url}/models within {timeout_s:g} s "
                    "(rl_sharing.server.ready_timeout_s)"
                )
            time.sleep(0.5)
        return False

    def stop(self, grace_s: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # vLLM stops its engine processes on SIGTERM
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class _Signals:
    """SIGTERM and SIGINT set `requested`; the pack passes SIGTERM on to its runs."""

    requested = False

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._set) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _set(self, *_):
        self.requested = True

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def run_pack(
    runs: list[PackRun],
    sharing: RLSharingConfig,
    server_log: str | Path,
    require_gpu: bool = False,
    poll_s: float = 0.2,
    progress_fd: int | None = None,
) -> int:
    """Train the runs side by side until all have ended; the exit status of the pack (0: all
    finished, 143: stopped by a signal with their states saved)."""
    served = [r for r in runs if server_key(r.teacher) is not None]
    if len({json.dumps(server_key(r.teacher)) for r in served}) > 1:
        raise PackError(
            "the runs of a pack that ask a teacher server must share its model and "
            "vllm settings: " + ", ".join(r.run_id for r in served)
        )
    server = None
    teachers = {r.run_id: r.teacher for r in runs}
    children: dict[str, subprocess.Popen] = {}
    with _Signals() as sig:
        try:
            if served:
                teacher = TeacherConfig.model_validate(served[0].teacher)
                port = free_port()
                base_url = f"http://127.0.0.1:{port}/v1"
                batch = {r.run_id: RLConfig.model_validate(r.section).batch_size for r in served}
                max_seqs = sum(batch.values())
                server = Server(server_argv(sharing, teacher, port, max_seqs), Path(server_log))
                if not server.wait_ready(
                    base_url, sharing.server.ready_timeout_s, lambda: sig.requested
                ):
                    log.warning("stop requested while the teacher server started; no run began")
                    return 143
                log.info("teacher server ready at %s", base_url)
                label = f"rl-pack: {sharing.server.command}"
                for r in served:
                    conc = sharing.server.concurrency or batch[r.run_id]
                    teachers[r.run_id] = shared_teacher(r.teacher, base_url, label, conc)
            for r in runs:
                if sig.requested:
                    break
                Path(r.log).parent.mkdir(parents=True, exist_ok=True)
                with open(r.log, "ab") as out:
                    # Each run echoes its progress where the pack's own goes (--progress-fd).
                    children[r.run_id] = subprocess.Popen(
                        train_argv(r, teachers[r.run_id], require_gpu, progress_fd),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        pass_fds=() if progress_fd is None else (progress_fd,),
                    )
                log.info("%s: started (pid %d), log %s", r.run_id, children[r.run_id].pid, r.log)
            return _supervise(runs, children, server, sig, poll_s)
        finally:
            for proc in children.values():  # only when an error left some running
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
            if server is not None:
                server.stop()


def _supervise(runs, children, server, sig, poll_s) -> int:
    stopping, server_died = False, False
    while any(p.poll() is None for p in children.values()):
        died = server is not None and server.proc.poll() is not None
        if not stopping and (sig.requested or died):
            server_died = not sig.requested
            if server_died:
                log.error(
                    "the teacher server exited (status %s); stopping the runs",
                    server.proc.returncode,
                )
            else:
                log.warning("stop requested: every run saves its state after its step in flight")
            stopping = True
            for p in children.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        time.sleep(poll_s)
    codes = {r.run_id: children[r.run_id].returncode for r in runs if r.run_id in children}
    for r in runs:
        log.info("%s: exit status %s", r.run_id, codes.get(r.run_id, "never started"))
    if server_died:
        raise server.failure("died while the runs trained (their states are saved: rerun the pack)")
    if sig.requested:
        return 143
    failed = [r for r in runs if codes.get(r.run_id) != 0]
    for r in failed:
        log.error(
            "%s failed (exit status %s); the last lines of %s:\n%s",
            r.run_id,
            codes.get(r.run_id),
            r.log,
            tail(r.log),
        )
    return 1 if failed else 0
