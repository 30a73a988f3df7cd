"""The workflow's plan as plain Python: the jobs a config asks for, their paths and sections.

`Plan.from_config(cfg)` reads only the config (and, for the teacher's rubric, the file it
names), so the plan is tested as unit tests; the rules in workflow/rules/ are thin declarations
over it.

What a plan holds:
- `rl_runs`: the RL run table expanded (run id -> RLRun), and `packs` of runs sharing a GPU;
- `models`: every model the evaluations score (`storyrl.plan.models`), in evaluation groups of
  `eval_shapes`, and the `full_set` models scored on the full zero-shot sets;
- `official` and `submissions`: the official pipeline's jobs and leaderboard submissions;
- `agreement`: the further judges.

Beside it, `storyrl.plan.args` gives each job's command-line arguments and
`storyrl.plan.targets` each stage's files, the tables' and figures' inputs and the default
target.
"""

import os
import re
from dataclasses import dataclass, field

from storyrl.config import LOCAL_WEIGHT_BACKENDS, Config, RLRun, rl_packs
from storyrl.core import layout
from storyrl.plan.models import Model, eval_shapes, full_set_models, models, pre_model_id
from storyrl.plan.official import Official, Submission, official, submissions

__all__ = ["Model", "Official", "Plan", "Submission", "one_of", "pre_model_id"]


@dataclass
class Plan:
    cfg: Config
    results: str = "results"
    repo: str = "."
    """The repository: relative config paths that do not exist in the run directory are read
    from here (config/prompts/..., config/babylm_baselines.yaml)."""
    rl_runs: dict[str, RLRun] = field(default_factory=dict)
    packs: list[list[str]] = field(default_factory=list)
    models: dict[str, Model] = field(default_factory=dict)
    full_set: set[str] = field(default_factory=set)
    eval_shapes: dict = field(default_factory=dict)
    official: Official | None = None
    submissions: dict[str, Submission] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config, results: str = "results", repo: str = ".") -> "Plan":
        p = cls(cfg, results, repo)
        p.rl_runs = cfg.rl_plan()
        sharing = cfg.rl_sharing.runs_per_gpu
        p.packs = rl_packs(p.rl_runs, sharing) if sharing > 1 else []
        p.models = models(cfg, p.rl_runs, results)
        p.full_set = full_set_models(cfg, p.rl_runs)
        p.eval_shapes = eval_shapes(p.models)
        p.official = official(cfg, p.rl_runs, p.models, p.full_set)
        p.submissions = submissions(cfg, p.rl_runs, p.models, p.full_set, p.official, results)
        return p

    # ----------------------------------------------------------------------- who is in the plan
    @property
    def packed(self) -> set[str]:
        return {run_id for ids in self.packs for run_id in ids}

    @property
    def agreement(self) -> dict:
        return self.cfg.agreement.active()

    @property
    def agreement_gpu(self) -> set[str]:
        """Judges that load weights here: GPU jobs."""
        return {n for n, t in self.agreement.items() if t.backend in LOCAL_WEIGHT_BACKENDS}

    @property
    def eval_data(self) -> str:
        return self.cfg.zero_shot.data_path or str(layout.demo_eval_dir(self.results))

    @property
    def fast_reading_models(self) -> list[str]:
        if not self.cfg.official.enabled:
            return []
        return sorted(
            {mid for s in self.submissions.values() for _, mid in s.revisions if mid in self.models}
        )

    def group_models(self, kind: str, group: str) -> list[str]:
        """The model ids of an evaluation group, in the order of `models`."""
        return [mid for mid, m in self.models.items() if m.group == group and m.kind == kind]

    # ------------------------------------------------------------------------------------ paths
    def repo_path(self, path: str) -> str:
        """A relative path from the config: as given if it exists in the run directory, else
        from the repo, so `--directory` elsewhere works."""
        if not path or os.path.isabs(path) or os.path.exists(path):
            return path
        return os.path.join(self.repo, path)

    def path(self, name: str, *args) -> str:
        """A result path of `storyrl.core.layout` under this plan's results folder, as a string."""
        return str(getattr(layout, name)(self.results, *args))

    def log(self, rule: str, *parts: str) -> str:
        return self.path("log_path", rule, *parts)

    def bench(self, rule: str, *parts: str) -> str:
        return self.path("bench_path", rule, *parts)

    def corpus_dir(self, corpus: str, name: str = "") -> str:
        """A corpus slice's folder, or the file `name` in it."""
        folder = self.path("corpus_dir", corpus)
        return f"{folder}/{name}" if name else folder

    def ckpt_dir(self, run_id: str, words: int) -> str:
        return self.path("checkpoint_dir", run_id, words)

    def rl_dir(self, run_id: str) -> str:
        return self.path("rl_dir", run_id)

    # ------------------------------------------------------------------------------------ inputs
    def corpus_source(self, corpus: str):
        """The folder a slice reads: the generated demo corpus, or the user's path.

        A user path that does not exist is not declared as an input: planning refuses it (the
        Snakefile's data check) unless the slice's subset is built, and then it is not read
        again."""
        cfg = self.cfg.corpora[corpus]
        if cfg.format == "demo":
            return self.corpus_dir(corpus, "raw")
        return cfg.path if os.path.exists(cfg.path) else []

    def pretrain_inputs(self, run_id: str) -> dict[str, str]:
        corpus = self.cfg.pretrain.runs[run_id].corpus
        return {
            "tokens": self.corpus_dir(corpus, "tokens.bin"),
            "meta": self.corpus_dir(corpus, "tokens.json"),
            "tokenizer": self.corpus_dir(corpus, "tokenizer"),
        }

    def rl_inputs(self, run_id: str) -> dict[str, str]:
        run = self.rl_runs[run_id]
        corpus = self.cfg.pretrain.runs[run.pretrain_run].corpus
        return {
            "checkpoint": self.ckpt_dir(run.pretrain_run, run.checkpoint),
            "corpus_stats": self.corpus_dir(corpus, "stats.json"),
        }

    def pack_inputs(self, ids: list[str]) -> list[str]:
        return list(dict.fromkeys(f for run_id in ids for f in self.rl_inputs(run_id).values()))

    def group_inputs(self, kind: str, group: str) -> list[str]:
        return sorted(
            {p for mid in self.group_models(kind, group) for p in self.models[mid].inputs}
        )

    def aoa_checkpoints(self, pretrain_run: str) -> list[tuple[int, str, str]]:
        """(words, model id, folder) of the milestones a pretraining run's AoA job reads."""
        return [
            (m, pre_model_id(pretrain_run, m), self.ckpt_dir(pretrain_run, m))
            for m in self.official.aoa_milestones
        ]

    def aoa_rl_checkpoints(self, run_id: str) -> list[tuple[int, str, str]]:
        r = self.official.aoa_rl_runs[run_id]
        return [c for c in self.aoa_checkpoints(r.pretrain_run) if c[0] <= r.checkpoint]


def one_of(names) -> str:
    """A wildcard constraint that matches exactly these names."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) or "(?!)"
