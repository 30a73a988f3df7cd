# The rl rules' plan (rl.smk): the RL targets and inputs, and the packs of runs that share a GPU.

import shlex

from storyrl.config import rl_packs

SHARING = CFG.rl_sharing
PACKS = rl_packs(PLAN, SHARING.runs_per_gpu) if SHARING.runs_per_gpu > 1 else []
PACKED = {run_id for ids in PACKS for run_id in ids}


def all_rl_outputs():
    return [f"{rl_dir(run_id)}/summary.json" for run_id in PLAN]


def rl_input(wildcards):
    return run_inputs(wildcards.run_id)


def run_inputs(run_id):
    run = PLAN[run_id]
    corpus = CFG.pretrain.runs[run.pretrain_run].corpus
    return {
        "checkpoint": ckpt_dir(run.pretrain_run, run.checkpoint),
        "corpus_stats": f"{corpus_dir(corpus)}/stats.json",
    }


def pack_run(run_id):
    """One run of a pack, as `storyrl rl pack --run` takes it: the arguments of its rule `rl`."""
    run = PLAN[run_id]
    inputs = run_inputs(run_id)
    return json.dumps({
        "run_id": run_id, "section": run.rl.model_dump(mode="json"),
        "teacher": json.loads(teacher_json(run.teacher)), "reward": run.reward,
        "checkpoint": inputs["checkpoint"], "corpus_stats": inputs["corpus_stats"],
        "pretrain_words": run.checkpoint, "output": rl_dir(run_id), "log": log_path("rl", run_id),
        "teacher_cache": f"{rl_dir(run_id)}/teacher_cache.sqlite"}, sort_keys=True)
