"""The evaluation stage's subcommands: `storyrl eval ...` (zero-shot, stories, the official
pipeline's GLUE, reading and AoA), `storyrl submission` and `storyrl demo-eval`. Each runs its
module's `cli_*` function, imported only when it runs."""

import json

from storyrl.config.commands import gpu_flag, lazy, positive_int, section
from storyrl.core.units import parse_words


def add_parser(sub) -> None:
    _add_eval(sub)
    _add_submission(sub)

    s = sub.add_parser("demo-eval", help="write demo evaluation sets in the official layout")
    s.add_argument("--out", required=True, help="the evaluation_data/ folder to write")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-full", type=int, default=200, help="items per full set (file)")
    s.add_argument("--n-fast", type=int, default=50, help="items per fast set (file)")
    s.set_defaults(func=demo_eval_command)


def demo_eval_command(args) -> None:
    from storyrl.data.demo_eval import generate

    counts = generate(args.out, seed=args.seed, n_full=args.n_full, n_fast=args.n_fast)
    for (task, variant), n in counts.items():
        print(f"{variant}\t{task}\t{n}")


def _add_eval(sub):
    e = sub.add_parser("eval", help="evaluate a checkpoint")
    esub = e.add_subparsers(dest="eval_command", required=True)

    def common(q):
        q.add_argument(
            "--batch-size", type=positive_int, default=64, help="sequences per forward pass"
        )
        q.add_argument("--device", default="auto", help="auto (CUDA if any), cpu, cuda, cuda:1")
        q.add_argument(
            "--dtype",
            choices=["auto", "float32", "bfloat16"],
            default="auto",
            help="auto: bf16 on GPU with fp32 re-check of close calls, fp32 on CPU",
        )
        q.add_argument("--revision-name", default="main", help="names the results sub-folder")

    q = esub.add_parser("zero-shot", help="one BabyLM zero-shot task; official flags and layout")
    q.add_argument("--model", required=True, help="checkpoint folder (save_pretrained)")
    q.add_argument(
        "--task",
        required=True,
        help="official task: blimp, ewok, entity_tracking, comps, wug_adj, wug_past",
    )
    q.add_argument("--data-path", required=True, help="the task's data folder")
    q.add_argument("--output-dir", default="results")
    common(q)
    q.set_defaults(func=lazy("storyrl.evaluate.zero_shot", "cli_one"))

    from storyrl.core.babylm_spec import ZERO_SHOT_TASKS as TASKS

    q = esub.add_parser(
        "zero-shot-suite", help="several zero-shot tasks, one model load, tidy Parquet rows"
    )
    q.add_argument("--model", help="checkpoint folder (save_pretrained)")
    q.add_argument(
        "--models",
        help="instead of --model, --variant, the outputs and the ids: "
        "several checkpoints in one process, a JSON list of {model, variants, parquet, "
        "output_dir, model_id, pretrain_words, rl_words} (each as its flag)",
    )
    q.add_argument("--data-path", required=True, help="evaluation_data/ folder")
    q.add_argument(
        "--variant",
        nargs="+",
        choices=["full", "fast"],
        default=["fast"],
        help="one or both (fast tasks are named <task>_fast in the Parquet)",
    )
    q.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    q.add_argument(
        "--fast-tasks",
        nargs="+",
        default=None,
        choices=list(TASKS),
        help="the tasks of the fast sets (default: --tasks)",
    )
    q.add_argument("--output-dir", default=None, help="also write the official layout here")
    q.add_argument("--parquet", default=None, help="write the eval_scores rows here")
    q.add_argument("--model-id", default=None, help="default: the model folder's name")
    q.add_argument("--pretrain-words", default=None, help="e.g. 20M")
    q.add_argument("--rl-words", default=None, help="e.g. 1M")
    common(q)
    gpu_flag(q)
    q.set_defaults(func=lazy("storyrl.evaluate.zero_shot", "cli_suite"))

    from storyrl.config import RLConfig, StoryEvalConfig

    q = esub.add_parser(
        "stories",
        help="a checkpoint writes stories from the RL prompts; the "
        "teacher scores them (one Parquet, table rollouts)",
    )
    q.add_argument("--model", help="checkpoint folder (pretraining or RL)")
    q.add_argument("--output", help="the stories Parquet to write")
    q.add_argument(
        "--models",
        help="instead of --model, --output and the ids: several "
        "checkpoints scored with one teacher, a JSON list of {model, output, model_id, "
        "pretrain_words, rl_words, run_id} (each as the flag of the same name)",
    )
    q.add_argument(
        "--section",
        type=section(StoryEvalConfig),
        required=True,
        help="the story evaluation section (JSON)",
    )
    q.add_argument(
        "--rl",
        type=section(RLConfig),
        required=True,
        help="the rl section (JSON): its prompts and sampling settings are used",
    )
    q.add_argument("--teacher", type=json.loads, required=True, help="teacher section (JSON)")
    q.add_argument("--reward", type=json.loads, required=True, help="reward section (JSON)")
    q.add_argument("--teacher-cache", help="score cache file")
    q.add_argument("--model-id", help="default: the folder's name (RL: <run id>-<folder name>)")
    q.add_argument(
        "--pretrain-words",
        type=parse_words,
        help="default: from the folder's storyrl_rl.json or storyrl_checkpoint.json",
    )
    q.add_argument("--rl-words", type=parse_words, help="default: from storyrl_rl.json, else 0")
    q.add_argument("--run-id", help="default: from storyrl_rl.json, else none")
    gpu_flag(q)
    q.set_defaults(func=lazy("storyrl.evaluate.stories", "cli_stories"))

    from storyrl.config import OfficialConfig
    from storyrl.core.babylm_spec import GLUE_TASKS

    o = esub.add_parser(
        "official",
        help="GLUE, reading and AoA through a checkout of the "
        "official BabyLM pipeline (config section `official`)",
    )
    osub = o.add_subparsers(dest="official_command", required=True)

    def official(q, model=True):
        q.add_argument(
            "--section",
            type=section(OfficialConfig),
            required=True,
            help="the official section (JSON): checkout, interpreter, hyperparameters",
        )
        if model:
            q.add_argument("--model", required=True, help="checkpoint folder")

    q = osub.add_parser("glue", help="fine-tune on one GLUE task (as eval_finetuning.sh)")
    official(q)
    q.add_argument("--task", required=True, choices=list(GLUE_TASKS))
    q.add_argument("--output-dir", required=True, help="the pipeline's --results_dir")
    q.set_defaults(func=lazy("storyrl.evaluate.official", "cli_glue"))

    q = osub.add_parser("reading", help="eye-tracking and self-paced reading scores")
    official(q)
    q.add_argument("--output-dir", required=True, help="the pipeline's --output_dir")
    q.add_argument(
        "--variant",
        choices=["full", "fast"],
        default="full",
        help="full_eval/ or fast_eval/ reading data (fast: a submission's checkpoints)",
    )
    q.set_defaults(func=lazy("storyrl.evaluate.official", "cli_reading"))

    q = osub.add_parser("collect", help="one model's GLUE and reading outputs -> eval_scores")
    official(q)
    q.add_argument("--glue-dir", help="folder of <task>/ results folders (glue)")
    q.add_argument("--reading-dir", help="output folder of the reading run")
    q.add_argument("--parquet", required=True)
    q.add_argument("--model-id", required=True)
    q.add_argument("--pretrain-words", type=parse_words, required=True)
    q.add_argument("--rl-words", type=parse_words, help="default: from storyrl_rl.json, else 0")
    q.set_defaults(func=lazy("storyrl.evaluate.official", "cli_collect"))

    q = osub.add_parser("aoa", help="AoA word surprisal over one pretraining run's milestones")
    official(q, model=False)
    q.add_argument("--run-id", required=True, help="the pretraining run")
    q.add_argument(
        "--checkpoint",
        nargs=3,
        action="append",
        required=True,
        metavar=("WORDS", "MODEL_ID", "PATH"),
        help="one per milestone",
    )
    q.add_argument(
        "--policy",
        nargs=2,
        metavar=("MODEL_ID", "PATH"),
        help="an RL policy started from the largest checkpoint given: write the "
        "pipeline's AoA score of that checkpoint and of the policy",
    )
    q.add_argument("--output-dir", required=True)
    q.add_argument("--parquet", required=True)
    q.set_defaults(func=lazy("storyrl.evaluate.aoa_score", "cli_aoa"))


def _add_submission(sub):
    s = sub.add_parser(
        "submission",
        help="collate a final model's outputs into the BabyLM 2025 "
        "leaderboard JSON (as the official collate_preds.py --fast)",
    )
    s.add_argument(
        "--final",
        required=True,
        help="the final model's folder (its name up to the last dot names its results folders)",
    )
    s.add_argument("--track", required=True, choices=["strict-small", "strict", "interaction"])
    s.add_argument("--output", required=True, help="the submission JSON to write")
    s.add_argument("--zero-shot-data", required=True, help="evaluation_data/ of the zero-shot runs")
    s.add_argument(
        "--official-data",
        help="evaluation_data/ of the official pipeline's runs "
        "(GLUE, reading); default: --zero-shot-data",
    )
    s.add_argument(
        "--tree",
        help="an official results folder holding <final>/<revision>/...; "
        "or give each run's output folder:",
    )
    s.add_argument("--zero-shot", help="output folder of the final model's zero-shot run")
    s.add_argument("--reading", help="output folder of its reading run")
    s.add_argument(
        "--glue",
        nargs=2,
        action="append",
        metavar=("TASK", "DIR"),
        help="output folder of its fine-tuning on TASK (every GLUE task)",
    )
    s.add_argument(
        "--aoa",
        nargs=2,
        metavar=("DIR", "REPO_ID"),
        help="output folder and model name of the AoA surprisal run",
    )
    s.add_argument(
        "--revision",
        nargs=4,
        action="append",
        metavar=("NAME", "MODEL", "ZERO_SHOT_DIR", "READING_DIR"),
        help="a checkpoint chck_<N>M: its folder and its fast zero-shot and reading "
        "output folders (one per checkpoint)",
    )
    s.add_argument(
        "--last", help="with --tree: the last revision trained (default: the track's last)"
    )
    s.set_defaults(func=lazy("storyrl.evaluate.submission", "cli_submission"))
