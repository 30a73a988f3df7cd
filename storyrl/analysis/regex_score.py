"""The teacher score as the authors' notebook read it (`analysis.score_statistic:
authors_regex`): the replies re-parsed at load time (`load.regex_sums`, column `regex_sum`),
then regrouped here into groups of a run's batch size."""

import logging

import numpy as np
import pandas as pd

from storyrl.analysis import AnalysisError
from storyrl.analysis.load import SCALE

log = logging.getLogger(__name__)


def regex_units(steps, rollouts, n: int) -> pd.DataFrame:
    """The authors' notebook's units: per run, the stories whose reply AUTHORS_REGEX matches
    (`regex_sum`), in order, cut into groups of the run's batch size (the last may be short);
    one unit per group, `teacher_score` = the group's mean sum / 9. 'before': the first `n`
    groups, 'after': the last `n`. Where replies drop, the groups run out before the steps do;
    the notebook then set the step table's last rows to NaN, here the last `n` groups count."""
    runs = sorted(steps.run_id.unique())
    have = set(rollouts.run_id.unique()) if rollouts is not None and len(rollouts) else set()
    lack = [r for r in runs if r not in have]
    if lack:
        raise AnalysisError(
            "analysis.score_statistic: authors_regex re-parses the teacher replies of the runs' "
            f"rollouts, and there are none for {', '.join(lack)} (give their rollouts.parquet, "
            "or set score_statistic: training)"
        )
    keys = ["run_id", "pretrain_words", "seed", "variant"]
    parts = []
    for run_id, g in rollouts[rollouts.run_id.isin(runs)].groupby("run_id", sort=True):
        batch = int(g.groupby("step").size().max())
        kept = g[g.regex_sum.notna()].sort_values(["step", "sample"], kind="stable")
        if kept.empty:
            log.warning("%s: no teacher reply matches the authors' regex: no score", run_id)
            continue
        means = kept.groupby(np.arange(len(kept)) // batch)[["regex_sum", "n_words", "n_tokens"]]
        means = means.mean()
        ids = kept.iloc[0][keys].to_dict()
        for win, sel in (("before", means.iloc[:n]), ("after", means.iloc[-n:])):
            parts.append(
                pd.DataFrame(
                    {
                        **{k: [v] * len(sel) for k, v in ids.items()},
                        "window": win,
                        "teacher_score": sel.regex_sum.to_numpy() / SCALE,
                        "n_words": sel.n_words.to_numpy(),
                        "n_tokens": sel.n_tokens.to_numpy(),
                        "source": "regex_groups",
                    }
                )
            )
    if not parts:
        raise AnalysisError("analysis.score_statistic: authors_regex: no reply of any run matches")
    return pd.concat(parts, ignore_index=True).sort_values(
        ["run_id", "window"], kind="stable", ignore_index=True
    )
