"""Synthetic results in the workflow's layout, written through the real schemas and writers.

Numbers follow the paper's shape (teacher score before/after RL per pretraining size, stories
that first shorten then lengthen, KL that grows) so tables and figures look like the real ones.
Run as a script to write a folder for looking at the figures:
    python tests/analysis_synth.py /tmp/synth && storyrl analysis all --results /tmp/synth ...
"""

import json
import sys
from pathlib import Path

import numpy as np

from storyrl.core import layout
from storyrl.core.schemas import make_metadata, write_table
from storyrl.core.units import words_label

PAPER = {
    20_000_000: (0.03, 0.20),
    50_000_000: (0.26, 1.36),
    90_000_000: (0.70, 2.28),
    200_000_000: (1.45, 2.70),
    500_000_000: (2.25, 3.12),
    900_000_000: (2.64, 3.37),
}
RUNS = [(w, 42) for w in PAPER] + [(900_000_000, 43), (900_000_000, 44)]
PRE_CHECKPOINTS = [1, 2, 5, 10, 20, 50, 90, 200, 500, 900]  # millions
PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"
FAST_TASKS = ["blimp", "blimp_supplement", "ewok", "entity_tracking", "comps", "wug_adj"]


def curve_score(words: float) -> float:
    """Teacher score (0-9) of a pretraining checkpoint: a logistic in log10(words)."""
    return 3.0 / (1 + np.exp(-(np.log10(words) - 8.45) * 2.5))


def stories(rng, mean9: float, n: int, words_mean: float):
    """n stories whose three 0-3 scores average to `mean9` / 9 in expectation."""
    p = np.clip(mean9 / 9, 0, 1)
    crit = rng.binomial(3, p, size=(n, 3)).astype(np.int8)
    n_words = np.clip(rng.poisson(words_mean, n), 0, 90)
    return crit, n_words


def rollout_rows(run_id, step, budget, crit, n_words, rng, entropy_per_word, unparsed=0.0):
    """Rows of the `rollouts` table; a share `unparsed` of the teacher replies did not parse
    (no scores, the default teacher score 0.5), as happens with a real teacher."""
    score = crit.sum(1) / 9
    failed = rng.random(len(score)) < unparsed
    score = np.where(failed, 0.5, score)
    bonus = 0.4 * n_words / 90
    n_tokens = np.round(n_words * 1.3).astype(int)
    rows = []
    for i in range(len(score)):
        rows.append(
            {
                "run_id": run_id,
                "step": step,
                "sample": i,
                "budget_words": budget,
                "prompt": PROMPT,
                "continuation": " ".join(["word"] * int(n_words[i])),
                "teacher_reply": "I cannot grade this"
                if failed[i]
                else " ".join(map(str, crit[i])),
                "readability": None if failed[i] else int(crit[i, 0]),
                "coherence": None if failed[i] else int(crit[i, 1]),
                "creativity": None if failed[i] else int(crit[i, 2]),
                "parsed": not failed[i],
                "teacher_score": float(score[i]),
                "length_bonus": float(bonus[i]),
                "reward": float((score[i] + bonus[i]) / 1.4),
                "n_tokens": int(n_tokens[i]),
                "n_words": int(n_words[i]),
                "logprob_sum": float(-entropy_per_word * n_words[i] * rng.uniform(0.9, 1.1)),
                "kl": float(rng.gamma(2.0, 1.0)),
            }
        )
    return rows


def write_run(root, words, seed, n_steps, batch, rng):
    run_id = f"{words_label(words)}-seed{seed}-base"
    before, after = PAPER[words]
    meta = {
        "run_id": run_id,
        "checkpoint": f"results/pretrain/paper/ckpt-{words_label(words)}",
        "seed": seed,
        "algorithm": "ppo",
    }
    all_rollouts, steps = [], []
    budget, generated = len(PROMPT.split()), 0
    for step in range(1, n_steps + 1):
        t = step / n_steps
        mean9 = before + (after - before) * (1 - np.exp(-4 * t)) + rng.normal(0, 0.05)
        length = 55 - 15 * np.exp(-(((t - 0.1) / 0.08) ** 2)) + 15 * t
        ent = 3.2 - 0.8 * t
        crit, n_words = stories(rng, max(mean9, 0), batch, length)
        # Each synthetic step stands for a paper-sized batch, so budgets reach ~1M words.
        budget += (1_000_000 - len(PROMPT.split())) // n_steps
        generated += int(n_words.sum())
        rows = rollout_rows(run_id, step, budget, crit, n_words, rng, ent, unparsed=0.02)
        all_rollouts += rows
        s = np.array([r["teacher_score"] for r in rows])
        lb = np.array([r["length_bonus"] for r in rows])
        rw = np.array([r["reward"] for r in rows])
        steps.append(
            {
                "run_id": run_id,
                "step": step,
                "budget_words": budget,
                "stories": step * batch,
                "generated_words": generated,
                "teacher_score_mean": s.mean(),
                "teacher_score_std": s.std(ddof=1),
                "length_bonus_mean": lb.mean(),
                "length_bonus_std": lb.std(ddof=1),
                "reward_mean": rw.mean(),
                "reward_std": rw.std(ddof=1),
                "parsed_share": 1.0,
                "response_tokens_mean": float(np.mean([r["n_tokens"] for r in rows])),
                "response_words_mean": float(n_words.mean()),
                "kl": 6 * t + rng.normal(0, 0.2),
                "kl_coef": 0.2 * (1 + t),
                "entropy": float(np.mean([-r["logprob_sum"] for r in rows])),
                "policy_entropy": ent,
                "ratio": 1.0,
                "policy_loss": 0.0,
                "value_loss": 0.1,
                "clipfrac": 0.1,
                "approxkl": 0.01,
                "value_var_explained": 0.5,
                "skipped_minibatches": 0.0,
                "time_sample_s": 1.0,
                "time_score_s": 1.0,
                "time_update_s": 1.0,
            }
        )
    write_table(layout.steps_path(root, run_id), "steps", steps, make_metadata("steps", **meta))
    write_table(
        layout.rollouts_path(root, run_id),
        "rollouts",
        all_rollouts,
        make_metadata("rollouts", **meta),
    )
    write_agreement(root, run_id, all_rollouts)
    summary = {
        "budget": 1_000_000,
        "prompt_words": len(PROMPT.split()),
        "teacher_words": budget - len(PROMPT.split()),
        "generated_words": generated,
        "stories": n_steps * batch,
        "steps": n_steps,
        "budget_words": budget,
        "total_words_seen": words + budget,
        "generated_ok": True,
    }
    path = layout.summary_path(root, run_id)
    path.write_text(json.dumps(summary, indent=2))
    return run_id, budget, after


def write_agreement(root, run_id, rollouts, teacher="strict", n=60):
    """A further teacher's re-scoring of `n` of the run's stories (the workflow's draw): the
    original scores moved by -1..+1 on a third of the criteria, a stricter judge on average.
    Its own random stream: the other synthetic files stay as they were without it."""
    import zlib

    import pandas as pd

    rng = np.random.default_rng(zlib.crc32(run_id.encode()))
    from storyrl.stories.teacher.agreement import draw_sample

    sample = draw_sample(pd.DataFrame(rollouts), n, 0, run_id)
    orig = sample[["readability", "coherence", "creativity"]]
    crit = orig.fillna(1).to_numpy(int)  # an unparsed original: no scores to move
    moved = rng.random(crit.shape) < 1 / 3
    other = np.clip(crit + moved * rng.choice([-1, -1, 1], crit.shape), 0, 3)
    rows = {
        "run_id": sample.run_id,
        "step": sample.step,
        "sample": sample["sample"],
        "tenth": sample.tenth,
        "teacher": teacher,
        "teacher_reply": [" ".join(map(str, r)) for r in other],
        "parsed": True,
        "failed_call": False,
        "teacher_score": other.sum(1) / 9,
        "orig_parsed": sample.parsed,
        "orig_teacher_score": sample.teacher_score,
        "n_words": sample.n_words,
        "n_tokens": sample.n_tokens,
    }
    for i, c in enumerate(("readability", "coherence", "creativity")):
        rows[c] = other[:, i]
        rows[f"orig_{c}"] = [None if pd.isna(v) else int(v) for v in orig[c]]
    rows = {k: [v] * len(sample) if np.isscalar(v) else list(v) for k, v in rows.items()}
    write_table(
        layout.agreement_path(root, teacher, run_id),
        "agreement",
        rows,
        make_metadata("agreement", run_id=run_id, teacher=teacher),
    )


def write_story_eval(root, model_id, mean9, n, rng, pretrain_words, rl_words=0, run_id=None):
    crit, n_words = stories(rng, mean9, n, 50)
    rows = rollout_rows(run_id or model_id, 0, 0, crit, n_words, rng, 3.0)
    ids = {"model_id": model_id, "pretrain_words": pretrain_words, "rl_words": rl_words}
    if run_id:
        ids["run_id"] = run_id
    write_table(
        layout.story_eval_path(root, model_id), "rollouts", rows, make_metadata("rollouts", **ids)
    )


def write_pretrain_log(root, run_id="paper", milestones=PRE_CHECKPOINTS, n_rows=200, seed=0):
    """A pretraining log (schema `pretrain_log`) whose loss falls as a power law of the words
    seen up to the last milestone; the milestones (millions) in its metadata, as pretraining
    writes them."""
    rng = np.random.default_rng(seed)
    last = max(milestones) * 1_000_000
    words = np.unique(np.geomspace(20_000, last, n_rows).astype(np.int64))
    loss = 2.2 + 8.0 * (words / 1e5) ** -0.35 + rng.normal(0, 0.03, len(words))
    step = np.arange(1, len(words) + 1)
    data = {
        "step": step,
        "epoch": words / last * 10,
        "words_seen": words,
        "tokens_seen": (words * 1.3).astype(np.int64),
        "loss": loss,
        "learning_rate": np.full(len(words), 1e-4),
        "grad_norm": np.full(len(words), 1.0),
        "tokens_per_s": np.full(len(words), 5e4),
    }
    path = layout.pretrain_log_path(root, run_id)
    write_table(
        path,
        "pretrain_log",
        data,
        make_metadata(
            "pretrain_log", run_id=run_id, milestones=[m * 1_000_000 for m in milestones]
        ),
    )
    return path


def eval_rows(model_id, words, rl_words, rng, tasks, suffix, boost=0.0):
    x = np.log10(words)
    rows = []
    for i, task in enumerate(tasks):
        if task.startswith("wug"):
            value, metric = 0.2 + 0.05 * (x - 6) + rng.normal(0, 0.02), "spearman_rho"
        else:
            value, metric = (
                50 + 3 * (i + 1) * (x - 6) / 3 + boost * (task == "entity_tracking"),
                "accuracy",
            )
            value += rng.normal(0, 0.3)
        rows.append(
            {
                "model_id": model_id,
                "pretrain_words": words,
                "rl_words": rl_words,
                "task": task + suffix,
                "subtask": "",
                "metric": metric,
                "value": float(value),
                "n_items": 200,
            }
        )
        rows.append(
            {
                "model_id": model_id,
                "pretrain_words": words,
                "rl_words": rl_words,
                "task": task + suffix,
                "subtask": "some_uid",
                "metric": metric,
                "value": 99.0,
                "n_items": 20,
            }
        )
    return rows


def write_results(root, n_steps=30, batch=24, n_stories=40, seed=0, runs=RUNS) -> dict:
    """The whole results folder; returns what was written (run ids, budgets, after scores)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    info = {"runs": {}}
    for words, s in runs:
        run_id, budget, after = write_run(root, words, s, n_steps, batch, rng)
        info["runs"][run_id] = {"pretrain_words": words, "budget": budget, "after": after}
        model_id = f"{run_id}-final"
        write_story_eval(root, model_id, after, n_stories, rng, words, budget, run_id)
        meta = make_metadata("eval_scores", model_id=model_id)
        rows = []
        for k in (1, 2, 3):  # RL checkpoints (fast sets), then the final policy (both)
            rows += eval_rows(
                f"{run_id}-ckpt{k}", words, budget * k // 4, rng, FAST_TASKS, "_fast", k
            )
        rows += eval_rows(model_id, words, budget, rng, FAST_TASKS, "_fast", 3)
        rows += eval_rows(model_id, words, budget, rng, FAST_TASKS + ["wug_past"], "", 2.8)
        write_table(layout.eval_path(root, model_id), "eval_scores", rows, meta)
    for m in PRE_CHECKPOINTS:
        words = m * 1_000_000
        model_id = f"ckpt-{words_label(words)}"
        write_story_eval(root, model_id, curve_score(words), n_stories, rng, words)
        rows = eval_rows(model_id, words, 0, rng, FAST_TASKS, "_fast")
        if m == 900:
            rows += eval_rows(model_id, words, 0, rng, FAST_TASKS + ["wug_past"], "")
        # Pretraining ids only in the file's metadata, not in the rows: the reader fills them.
        for r in rows:
            r["pretrain_words"] = r["rl_words"] = None
        write_table(
            layout.eval_path(root, model_id),
            "eval_scores",
            rows,
            make_metadata("eval_scores", model_id=model_id, pretrain_words=words, rl_words=0),
        )
    write_pretrain_log(root)
    (root / "baselines.yaml").write_text(
        "1000M-pre baseline: {BLiMP: 74.88, BLiMP supplement: 63.32, EWoK: 51.67, COMPS: 56.17,"
        " Entity tracking: 31.51, GLUE: 52.18}\n"
        "SimPO baseline: {BLiMP: 72.16, BLiMP supplement: 61.22, EWoK: 51.92, COMPS: 55.05,"
        " Entity tracking: 28.06, GLUE: 50.35}\n"
    )
    return info


if __name__ == "__main__":
    write_results(
        sys.argv[1],
        n_steps=int(sys.argv[2]) if len(sys.argv) > 2 else 60,
        batch=int(sys.argv[3]) if len(sys.argv) > 3 else 60,
    )
