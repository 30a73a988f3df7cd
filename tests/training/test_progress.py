"""Progress of long jobs: pretraining and RL started as a rule starts them (output into a log
file) write plain lines with step k/N (N the planned total), words, loss or score, s/step and
ETA, and no carriage-return bars; in a terminal it is a bar."""

import fcntl
import io
import logging
import os
import re
import select
import struct
import termios

import pandas as pd

import tiny_jobs
from rl_toys import make_checkpoint
from storyrl.pretrain.schedule import plan_from_meta
from storyrl.rl.ledger import Ledger
from storyrl.training.progress import Progress, duration

LINE = re.compile(
    r"(?P<name>pretrain \S+|rl \S+): step (?P<k>\d+)/(?P<n>\d+|\?)(?: \(\d+%\))?, "
    r"words (?P<words>[\d,]+)(?:, (?P<rest>.*?))?, (?P<s>[\d.]+|\?) s/step, ETA (?P<eta>\S+)$"
)
EVERY_LINE = {"progress_every_s": 1e-6}


def progress_lines(text: str) -> list[re.Match]:
    return [m for m in map(LINE.search, text.splitlines()) if m]


def test_pretraining_log_file_has_plain_lines_with_k_of_the_planned_steps(demo_prepared, tmp_path):
    text = tiny_jobs.pretrain(demo_prepared, tmp_path, EVERY_LINE)
    assert "\r" not in text
    job = tiny_jobs.PRETRAIN
    plan = plan_from_meta(
        demo_prepared / "tokens.json", job.model.n_positions, job.training, job.milestones
    )
    lines = progress_lines(text)
    assert [int(m["k"]) for m in lines] == list(range(1, plan.total_steps + 1))
    assert {m["n"] for m in lines} == {str(plan.total_steps)}
    assert [int(m["words"].replace(",", "")) for m in lines] == [
        plan.words_at(k) for k in range(1, plan.total_steps + 1)
    ]
    log = pd.read_parquet(tmp_path / "out" / "log.parquet")
    last = lines[-1]
    assert f"loss {log.loss.iloc[-1]:.4g}" in last["rest"] and last["eta"] == "0:00:00"
    assert all(re.fullmatch(r"\d+:\d\d:\d\d", m["eta"]) for m in lines[1:])


def test_rl_log_file_has_plain_lines_with_k_of_the_steps_the_ledger_plans(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    # The toy teacher replies 3 words to each of 16 stories; the 16 prompts have 4 words each,
    # charged once: 64 + 5 x 48 = 304 budget words are exactly 5 steps.
    cfg = tiny_jobs.PPO.model_copy(update={"budget": 304, "max_steps": None})
    text = tiny_jobs.rl(ckpt, tmp_path / "ppo", EVERY_LINE, cfg=cfg)
    assert "\r" not in text
    steps = pd.read_parquet(tmp_path / "ppo" / "run" / "steps.parquet")
    assert len(steps) == 5
    lines = progress_lines(text)
    assert [(int(m["k"]), m["n"]) for m in lines] == [(k, "5") for k in range(1, 6)]
    assert [int(m["words"]) for m in lines] == steps.budget_words.tolist()
    assert all(f"score {s:.4g}" in m["rest"] for m, s in zip(lines, steps.teacher_score_mean))
    assert lines[-1]["eta"] == "0:00:00"

    # GRPO through TRL's trainer: the same lines, and none of its bars either.
    grpo = tiny_jobs.PPO.model_copy(
        update={"algorithm": "grpo", "max_steps": 3, "group": {"lr": 1e-3, "num_generations": 8}}
    )
    text = tiny_jobs.rl(ckpt, tmp_path / "grpo", EVERY_LINE, cfg=grpo)
    assert "\r" not in text
    assert [(m["k"], m["n"]) for m in progress_lines(text)] == [("1", "3"), ("2", "3"), ("3", "3")]


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_lines_come_every_interval_and_at_the_last_step(caplog):
    clock, out = Clock(), io.StringIO()
    p = Progress("rl x", 20, every_s=10, start=0, stream=out, clock=clock)
    with caplog.at_level(logging.INFO, logger="storyrl.training.progress"):
        for k in range(1, 21):
            clock.t += 3  # 3 s a step: a line at step 1, then every 4th step (12 s), and step 20
            p.update(k, words=100 * k, score=0.5)
    ks = [int(LINE.search(r.getMessage())["k"]) for r in caplog.records]
    assert ks == [1, 5, 9, 13, 17, 20]
    assert out.getvalue() == ""  # a file gets log lines, never a bar
    line = caplog.records[2].getMessage()
    assert line == "rl x: step 9/20 (45%), words 900, score 0.5, 3.00 s/step, ETA 0:00:33"


def test_resumed_steps_do_not_count_in_the_pace_and_the_total_may_change(caplog):
    clock = Clock()
    p = Progress("pretrain y", None, every_s=1, start=40, stream=io.StringIO(), clock=clock)
    clock.t += 2
    assert p.line(41, words=7) == "pretrain y: step 41/?, words 7, 2.00 s/step, ETA ?"
    clock.t += 2
    p.update(42, words=8, total=100, loss=float("nan"))
    assert p.line(42, words=8) == "pretrain y: step 42/100 (42%), words 8, 2.00 s/step, ETA 0:01:56"
    assert duration(3 * 86400 + 3661) == "3d 1:01:01" and duration(float("nan")) == "?"


def test_a_terminal_gets_a_tqdm_bar():
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    with open(slave, "w") as tty:
        p = Progress("pretrain z", 5, stream=tty)
        for k in range(1, 6):
            p.update(k, words=10 * k, loss=2.0)
        p.close()
    data = b""
    while select.select([master], [], [], 0.5)[0]:
        try:
            data += os.read(master, 65536)
        except OSError:  # all read, and the other end is closed
            break
    os.close(master)
    data = data.decode()
    assert "\r" in data and "pretrain z" in data and "5/5" in data and "loss=2" in data


def test_the_ledger_plans_the_steps_its_budget_pays_for():
    ledger = Ledger(budget=304)
    assert ledger.planned_steps() is None and ledger.planned_steps(7) == 7
    prompts, replies = ["one two three four"] * 16, ["a b c"] * 16
    ledger.charge(prompts, replies, ["x"] * 16)
    assert ledger.used == 112 and ledger.planned_steps() == 5 and ledger.planned_steps(3) == 3
    while ledger.fits(prompts, replies):
        ledger.charge(prompts, replies, ["x"] * 16)
    assert ledger.steps == ledger.planned_steps() == 5
    # Replies without words never end a budget: only max_steps can say.
    empty = Ledger(budget=100)
    empty.charge(["p"], [""], ["x"])
    assert empty.planned_steps() is None and empty.planned_steps(9) == 9
