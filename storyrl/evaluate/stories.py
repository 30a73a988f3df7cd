"""Story evaluation: a checkpoint writes `n_stories` stories from the RL prompts, the teacher
scores them, and one Parquet (table `rollouts`) holds them with the checkpoint's ids.

This evaluation is ours, not the paper's. The paper scored no separate stories: its numbers
before and after RL are the mean teacher scores of the first and last 10 training batches
(360 stories each, sampled with dropout on after the first batch), which the analysis also
reports (the `paper` method of the equivalence table, the before/after table). Ours samples
the same prompt in eval mode from every checkpoint, so checkpoints that started no RL run and
RL checkpoints get a score too (the `curve` method).

The student samples exactly as in RL (the `rl` section's prompts and sampling settings) but always
in eval mode (no dropout). The file's `storyrl` metadata carries model_id, pretrain_words,
rl_words and run_id, which `storyrl.analysis.load.load_story_eval` reads. For an RL checkpoint
folder (with `storyrl_rl.json`) rl_words, run_id and pretrain_words default to its record; for a
pretraining checkpoint (with `storyrl_checkpoint.json`) pretrain_words defaults to its milestone.
"""

import json
import logging
from pathlib import Path

import numpy as np

from storyrl.config import RLConfig, StoryEvalConfig

log = logging.getLogger(__name__)


def evaluate_stories(
    model_dir,
    output,
    cfg: StoryEvalConfig,
    rl: RLConfig,
    scorer,
    model_id: str | None = None,
    pretrain_words: int | None = None,
    rl_words: int | None = None,
    run_id: str | None = None,
) -> dict:
    """Sample cfg.n_stories stories from the checkpoint at `model_dir`, score them with
    `scorer(prompts, texts) -> (judgements, rewards)` and write them to `output` (Parquet,
    table `rollouts`: step 0, sample = story index, budget_words 0). Ids not given come from the
    folder (storyrl.core.checkpoints.checkpoint_ids); model_id defaults to the folder's name
    (prefixed by the run id for an RL checkpoint). Returns a summary: n, teacher_score_mean,
    parsed_share and the ids."""
    from storyrl.core.checkpoints import checkpoint_ids, load_checkpoint, resolve_device
    from storyrl.core.schemas import make_metadata, write_table
    from storyrl.stories.rows import ScoredBatch, rollout_rows
    from storyrl.stories.sampling import batch_prompts, sample, seed_all
    from storyrl.stories.scoring import teacher_identity

    model_dir = Path(model_dir)
    found = checkpoint_ids(model_dir)
    run_id = run_id if run_id is not None else (found.get("run_id") or "")
    rl_words = rl_words if rl_words is not None else int(found.get("rl_words") or 0)
    if pretrain_words is None:
        pretrain_words = found.get("pretrain_words")
    if model_id is None:
        model_id = f"{run_id}-{model_dir.name}" if run_id else model_dir.name

    device = resolve_device(cfg.device, cfg.threads)
    tokenizer, lm = load_checkpoint(model_dir)
    lm = lm.to(device).eval()
    seed_all(cfg.seed)
    sampling = rl.sampling.model_copy(update={"chunk_size": None})  # one generate call per batch
    prompts = batch_prompts(rl.prompts, cfg.n_stories)

    texts, judgements, n_tokens = [], [], []
    rewards: dict[str, list] = {}
    for s in range(0, cfg.n_stories, cfg.batch_size):
        part = prompts[s : s + cfg.batch_size]
        ro = sample(lm, tokenizer, part, sampling, train_mode=False)
        j, r = scorer(part, ro.texts)
        texts += ro.texts
        judgements += list(j)
        n_tokens += [len(x) for x in ro.responses]
        for k, v in r.items():
            rewards.setdefault(k, []).extend(np.asarray(v, dtype=float).tolist())
        log.info("%s: %d of %d stories", model_dir, len(texts), cfg.n_stories)

    rows = rollout_rows(run_id, 0, 0, ScoredBatch(prompts, texts, judgements, rewards, n_tokens))
    section = {
        "stories": cfg.model_dump(),
        "prompts": rl.prompts,
        "sampling": rl.sampling.model_dump(),
    }
    meta = make_metadata(
        "rollouts",
        section,
        model_id=model_id,
        pretrain_words=pretrain_words,
        rl_words=rl_words,
        run_id=run_id,
        checkpoint=str(model_dir),
        n_stories=cfg.n_stories,
        seed=cfg.seed,
        prompts=rl.prompts,
        sampling=rl.sampling.model_dump(),
        teacher=teacher_identity(scorer),
    )
    write_table(output, "rollouts", rows, meta)
    summary = {
        "n": len(rows),
        "teacher_score_mean": float(np.mean(rewards["teacher_score"])),
        "parsed_share": float(np.mean([bool(j.parsed) for j in judgements])),
        "model_id": model_id,
        "pretrain_words": pretrain_words,
        "rl_words": rl_words,
        "run_id": run_id,
        "output": str(output),
    }
    log.info(
        "%s: %d stories, teacher score %.3f, parsed %.1f%%",
        model_id,
        summary["n"],
        summary["teacher_score_mean"],
        100 * summary["parsed_share"],
    )
    return summary


def cli_stories(args) -> None:
    """`storyrl eval stories`: one checkpoint (--model/--output) or several (--models JSON), with
    one teacher for all; print one summary per checkpoint as a JSON line."""
    import sys

    from pydantic import ValidationError

    from storyrl.config import ConfigError
    from storyrl.evaluate.manifest import StoryEntry, entries
    from storyrl.stories.scoring import teacher_scorer
    from storyrl.stories.teacher import TeacherFailure

    cfg, rl = args.section, args.rl
    todo = entries(
        args,
        StoryEntry,
        {
            "model": args.model,
            "output": args.output,
            "model_id": args.model_id,
            "pretrain_words": args.pretrain_words,
            "rl_words": args.rl_words,
            "run_id": args.run_id,
        },
    )
    try:
        # The teacher's seed is the story section's, the same for every checkpoint, so one
        # teacher (one engine load) serves them all.
        scorer = teacher_scorer(
            args.teacher, args.reward, rl.sampling.max_new_tokens, cfg.seed, args.teacher_cache
        )
    except ValidationError as err:
        raise ConfigError(f"--teacher/--reward: {err}") from None
    from storyrl.core.checkpoints import CheckpointError
    from storyrl.evaluate import kept

    group = args.models is not None
    shared = {
        "section": cfg.model_dump(mode="json"),
        "rl": rl.model_dump(mode="json"),
        "teacher": getattr(scorer, "identity", None),
        "reward": args.reward,
    }
    broken = []
    try:
        for e in todo:
            try:
                # A group job: one broken checkpoint must not cost the others their results.
                rec = kept.record(e.model, {**shared, "entry": e.model_dump()}) if group else None
                if group and kept.restore([e.output], rec):
                    continue
                summary = evaluate_stories(
                    e.model,
                    e.output,
                    cfg,
                    rl,
                    scorer,
                    model_id=e.model_id,
                    pretrain_words=e.pretrain_words,
                    rl_words=e.rl_words,
                    run_id=e.run_id,
                )
            except CheckpointError as err:
                if not group:
                    raise
                broken.append(str(err))
                continue
            if group:
                kept.keep([e.output], rec)
            print(json.dumps(summary), flush=True)
        kept.fail_on(broken, len(todo))
    except TeacherFailure as err:
        # Scored replies are in the cache (if any): a rerun resumes where this one stopped.
        print(f"storyrl eval stories: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        scorer.close()
