# The submission rules' plan (submission.smk): what each leaderboard submission needs, and the
# arguments of its job.

from storyrl.babylm_spec import GLUE_TASKS, ZERO_SHOT_TASKS, TrackError, revisions_for


class Submission(NamedTuple):
    track: str
    revisions: list
    """(chck_<N>M, model id) in the track's order."""
    aoa: tuple
    """(output folder of the AoA run, the model name it read) or None."""
    lacking: list
    """What this config does not make, in words."""


def _submission(model_id, pretrain_run, rl_run=None):
    m = MODELS[model_id]
    small = OFFICIAL.aoa_track == "strict-small"
    track = "strict-small" if small else ("interaction" if rl_run else "strict")
    try:
        revs = revisions_for(track, m.pretrain_words, m.pretrain_words if rl_run else None)
    except TrackError:
        return None  # an RL policy whose checkpoint is not one of the track's revisions
    pairs = [(name, model_id if words is None else pre_model_id(pretrain_run, words)) for name, words in revs]
    lacking = [f"the pretraining milestone of {n}" for n, mid in pairs if mid not in MODELS]
    if not pairs:
        lacking.append(f"a checkpoint of the {track} track (chck_1M, ...) up to the final model")
    if not OFFICIAL.enabled:
        lacking.append("official.path (GLUE, reading and AoA run in the official pipeline)")
    else:
        lacking += [f"official.glue: {t}" for t in GLUE_TASKS if t not in OFFICIAL.glue]
        lacking += [] if model_id in GLUE_MODELS else [f"official.glue_models: {model_id}"]
        lacking += [] if OFFICIAL.reading else ["official.reading"]
    lacking += [f"zero_shot.tasks: {t}" for t in ZERO_SHOT_TASKS if t not in CFG.zero_shot.tasks]
    aoa = None
    if rl_run in AOA_RL_RUNS:
        aoa = (f"{RESULTS}/official/{rl_run}-rl-aoa", f"storyrl/{rl_run}-rl")
    elif rl_run is None and pretrain_run in AOA_RUNS:
        aoa = (f"{RESULTS}/official/{pretrain_run}-aoa", f"storyrl/{pretrain_run}")
    elif OFFICIAL.enabled:
        lacking.append("official.aoa (the AoA surprisal over the revisions)")
    return Submission(track, pairs, aoa, lacking)


def _submissions():
    out = {}
    for prun in CFG.pretrain.runs:
        for w in CFG.pretrain.milestones:
            if pre_model_id(prun, w) in FULL_SET_MODELS:
                out[pre_model_id(prun, w)] = _submission(pre_model_id(prun, w), prun)
    for run_id, r in PLAN.items():
        if f"{run_id}-rl-final" in FULL_SET_MODELS:
            out[f"{run_id}-rl-final"] = _submission(f"{run_id}-rl-final", r.pretrain_run, run_id)
    return {k: v for k, v in out.items() if v is not None}


SUBMISSIONS = _submissions()
FAST_READING_MODELS = sorted(
    {mid for s in SUBMISSIONS.values() for _, mid in s.revisions if mid in MODELS} if OFFICIAL.enabled else []
)


def all_submission_outputs():
    return [f"{RESULTS}/submission/{m}.json" for m, s in SUBMISSIONS.items() if not s.lacking]


def submission_inputs(wildcards):
    s = SUBMISSIONS[wildcards.model_id]
    if s.lacking:
        raise WorkflowError(
            f"{RESULTS}/submission/{wildcards.model_id}.json: this config does not make "
            + "; ".join(s.lacking)
        )
    m = wildcards.model_id
    return dict(
        zero_shot=[f"{RESULTS}/eval/official/{mid}" for mid in dict.fromkeys([m] + [mid for _, mid in s.revisions])],
        glue=[official_dir(m, f"glue/{t}") for t in GLUE_TASKS],
        reading=official_dir(m, "reading"),
        reading_fast=[official_dir(mid, "reading_fast") for _, mid in s.revisions],
        aoa=s.aoa[0],
        data=[] if CFG.zero_shot.data_path else EVAL_DATA,
    )


def submission_args(wildcards):
    m, s = wildcards.model_id, SUBMISSIONS[wildcards.model_id]
    args = [f"--final {MODELS[m].path} --track {s.track} --zero-shot-data {EVAL_DATA}"]
    args.append(f"--official-data {OFFICIAL.data()} --zero-shot {RESULTS}/eval/official/{m}")
    args.append(f"--reading {official_dir(m, 'reading')} --aoa {s.aoa[0]} {s.aoa[1]}")
    args += [f"--glue {t} {official_dir(m, f'glue/{t}')}" for t in GLUE_TASKS]
    args += [
        f"--revision {name} {MODELS[mid].path} {RESULTS}/eval/official/{mid} {official_dir(mid, 'reading_fast')}"
        for name, mid in s.revisions
    ]
    return " ".join(args)
