# The agreement rules' plan (agreement.smk): the judges and their samples.

from storyrl.config import LOCAL_WEIGHT_BACKENDS

AGREEMENT = CFG.agreement.active()
AGREEMENT_GPU = {n for n, t in AGREEMENT.items() if t.backend in LOCAL_WEIGHT_BACKENDS}


def all_agreement_outputs():
    return [str(layout.agreement_path(RESULTS, t, r)) for t in AGREEMENT for r in PLAN]


def agreement_params(wildcards):
    t = AGREEMENT[wildcards.teacher].model_dump(mode="json")
    return {
        "teacher": teacher_json(t),
        "sample": json.dumps(
            {"stories_per_run": CFG.agreement.stories_per_run, "seed": CFG.agreement.seed}
        ),
    }
