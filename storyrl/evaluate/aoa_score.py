"""The official pipeline's AoA *score*, for a pretraining checkpoint and the RL policy after it.

What the pipeline computes (babylm/evaluation-pipeline-2025): `AoA_word/run.py` writes only the
surprisal of the CDI words at each revision `chck_<N>M` of one model (`surprisal.json`); the
score is computed later by `calculate_results_from_pred.py`, which calls
`evaluation_pipeline.utils.AoAEvaluator(full_eval/aoa/cdi_human.csv).compute_curve_fitness`:
per word, a sigmoid fitted to -surprisal over log10(words of the revision + 1) gives the model's
age of acquisition, a sigmoid fitted to the CDI proportions gives the children's, and the
score (`curve_fitness`) is the Pearson r between the two over the words where both fits work.
That script wants the whole collated submission (every task), so we call the same evaluator
on the surprisal file alone, in the pipeline's interpreter and checkout; nothing is copied.

After RL (as the authors' interaction-track model): the RL policy's history is the track's
revisions up to the pretraining checkpoint P plus the policy in the track's next revision
(900M -> chck_1000M in non-strict-small), so its age of acquisition curve ends with what RL made
of the model. Before RL (ours: the authors' code scores no separate pre-RL AoA): the history of
P is those revisions up to P alone. One pipeline run gives both; the tables and figures label
the before-RL score as ours.
"""

import json
import logging
import subprocess
from pathlib import Path

from storyrl.core.babylm_spec import aoa_steps, policy_steps
from storyrl.core.units import words_label
from storyrl.evaluate.official import (
    OfficialError,
    _write,
    aoa_command,
    aoa_result_path,
    aoa_rows,
    parse_aoa,
    revision_store,
    run_pipeline,
)

log = logging.getLogger(__name__)

SCORE_SCRIPT = """import json, sys
from evaluation_pipeline.utils import AoAEvaluator
r = AoAEvaluator(sys.argv[2]).compute_curve_fitness(json.load(open(sys.argv[1])))
print("STORYRL_AOA " + json.dumps({k: r.get(k) for k in ("curve_fitness", "p_value", "n_words")}))
"""
"""Run as `python -c` from the checkout root: the pipeline's evaluator on one surprisal file."""

SCORE_PREFIX = "STORYRL_AOA "


def score_command(cfg, surprisal_path) -> list[str]:
    return [
        cfg.python,
        "-c",
        SCORE_SCRIPT,
        str(Path(surprisal_path).resolve()),
        str(cfg.data() / "full_eval" / "aoa" / "cdi_human.csv"),
    ]


def parse_score(text: str, where: str) -> dict:
    """The evaluator's result from the script's output (the last `STORYRL_AOA` line)."""
    lines = [line for line in text.splitlines() if line.startswith(SCORE_PREFIX)]
    try:
        out = json.loads(lines[-1][len(SCORE_PREFIX) :])
        float(out["curve_fitness"])
    except (IndexError, ValueError, KeyError, TypeError):
        raise OfficialError(f"{where}: no AoA score in the pipeline's output") from None
    return out


def score(cfg, entries: list[dict], steps: list[str], path) -> dict:
    """The pipeline's AoA score over the surprisal `entries` of revisions `steps`; the entries
    it reads are written to `path` (kept next to the pipeline's output)."""
    path = Path(path)
    path.write_text(json.dumps({"results": [e for e in entries if e.get("step") in steps]}))
    cmd = score_command(cfg, path)
    done = subprocess.run(cmd, cwd=cfg.path, capture_output=True, text=True)
    if done.returncode:
        raise OfficialError(
            f"the pipeline's AoA evaluator failed (exit {done.returncode}) on "
            f"{path}: {done.stderr.strip()[-2000:]}"
        )
    result = parse_score(done.stdout, str(path))
    if (result.get("n_words") or 0) < 3:
        log.warning(
            "%s: the pipeline's AoA evaluator fitted fewer than 3 words (%s); its score "
            "is then 0.0 by its own convention",
            path,
            result.get("n_words"),
        )
    return result


def score_rows(result: dict, model_id: str, pretrain_words: int, rl_words: int) -> list[dict]:
    """The score as an `eval_scores` row (task `aoa`, the Pearson r; n_items: the words it
    used)."""
    return [
        dict(
            model_id=model_id,
            pretrain_words=pretrain_words,
            rl_words=rl_words,
            task="aoa",
            subtask="",
            metric="pearson_r",
            value=float(result["curve_fitness"]),
            n_items=result.get("n_words"),
        )
    ]


# --------------------------------------------------------------------------- CLI
def cli_aoa(args):
    """`storyrl eval official aoa`: surprisal of the CDI words at every milestone of one
    pretraining run that the track names, read through an offline revision store (revisions
    past the last milestone given are left out; the pipeline skips them). With `--policy`, the
    RL policy fills the track's revision after its checkpoint (the largest milestone given), and
    the rows are the pipeline's AoA score of that checkpoint and of the policy."""
    cfg = args.section
    by_words = {int(w): (model_id, path) for w, model_id, path in args.checkpoint}
    steps = [s for s in aoa_steps(cfg.aoa_track) if s[1] <= max(by_words)]
    slot = None
    if getattr(args, "policy", None):
        steps, slot = policy_steps(cfg.aoa_track, max(by_words), aoa_steps(cfg.aoa_track))
    lack = [name for name, w in steps if w not in by_words]
    if lack:
        raise OfficialError(
            f"aoa_track {cfg.aoa_track}: no checkpoint given for {lack} "
            f"(have {', '.join(words_label(w) for w in sorted(by_words))})"
        )
    repo_id = f"storyrl/{args.run_id}"
    hub = Path(args.output_dir) / "hub"
    revisions = {name: by_words[w][1] for name, w in steps}
    if slot:
        revisions[slot] = args.policy[1]
    revision_store(hub, repo_id, revisions)
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(hub.resolve())}
    run_pipeline(cfg, aoa_command(cfg, repo_id, args.output_dir), env)
    entries = parse_aoa(aoa_result_path(args.output_dir, repo_id), list(revisions))
    if slot:
        from storyrl.core.checkpoints import rl_words as checkpoint_rl_words

        start = max(by_words)
        folder = aoa_result_path(args.output_dir, repo_id).parent
        pre = score(cfg, entries, [n for n, _ in steps], folder / "score_pre.json")
        rl = score(cfg, entries, list(revisions), folder / "score_rl.json")
        rows = score_rows(pre, by_words[start][0], start, 0)
        rows += score_rows(rl, args.policy[0], start, checkpoint_rl_words(args.policy[1]) or 0)
    else:
        rows = aoa_rows(entries, {name: (by_words[w][0], w) for name, w in steps})
    _write(args.parquet, rows, cfg, run_id=args.run_id)
    for r in rows:
        if r["subtask"] == "":
            print(f"{r['model_id']}\t{r['task']}\t{r['value']:.3f}")
