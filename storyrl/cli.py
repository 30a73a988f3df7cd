"""The `storyrl` command: one subcommand per stage entry point; every rule calls one of these.

Stage settings arrive as `--section JSON` (the rule's own config section, validated here), paths
as explicit arguments, so the same call works from a rule, a shell and a test.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from storyrl.units import parse_words


def _section(model):
    """argparse type: a JSON object validated against a config section model."""

    def parse(text: str):
        from pydantic import ValidationError

        from storyrl.config import ConfigError

        try:
            return model.model_validate(json.loads(text))
        except (json.JSONDecodeError, ValidationError) as err:
            raise argparse.ArgumentTypeError(f"bad {model.__name__} section: {err}") from None
        except ConfigError as err:  # pragma: no cover - defensive
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = model.__name__
    return parse


def _gpu_flag(q):
    q.add_argument(
        "--require-gpu",
        action="store_true",
        help="stop at once, saying why, if no CUDA device is usable "
        "(rules pass it unless compute.allow_cpu)",
    )


def build_parser() -> argparse.ArgumentParser:
    from storyrl import config as C

    p = argparse.ArgumentParser(prog="storyrl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("check-config", help="validate config YAML file(s) and print the result")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=_check_config)

    s = sub.add_parser("schema", help="write the config's JSON schema (editors check YAML with it)")
    s.add_argument(
        "--output", help=f"file to write (the committed one: {C.SCHEMA_PATH}); default: print it"
    )
    s.set_defaults(func=_schema)

    s = sub.add_parser("demo-corpus", help="write the synthetic BabyLM-format corpus")
    s.add_argument("--output", required=True, help="folder to write (train_demo/, dev/)")
    s.add_argument("--words", type=parse_words, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_demo_corpus)

    s = sub.add_parser("subset", help="read a corpus and write its seeded subset as Parquet")
    s.add_argument("--section", type=_section(C.CorpusConfig), required=True)
    s.add_argument("--path", required=True, help="the corpus (file or folder)")
    s.add_argument("--output", required=True, help="subset Parquet (text, source)")
    s.add_argument("--stats", required=True, help="JSON with lines and words per source")
    s.set_defaults(func=_subset)

    s = sub.add_parser("tokenizer", help="train the byte-level BPE on a subset")
    s.add_argument("--section", type=_section(C.TokenizerConfig), required=True)
    s.add_argument("--subset", required=True)
    s.add_argument("--output", required=True, help="tokenizer folder")
    s.set_defaults(func=_tokenizer)

    s = sub.add_parser("tokens", help="tokenize a subset once into a flat token file")
    s.add_argument("--subset", required=True)
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--output", required=True, help="token stream (.bin)")
    s.add_argument("--meta", required=True, help="JSON with counts and tokens per word")
    s.add_argument(
        "--section",
        type=_section(C.CorpusConfig),
        help="the corpus section (JSON): its group_rows and ratio_rows are used",
    )
    s.set_defaults(func=_tokens)

    s = sub.add_parser("pretrain", help="train (or resume) one pretraining run")
    s.add_argument("--section", type=_section(C.PretrainJob), required=True)
    s.add_argument("--tokens", required=True)
    s.add_argument("--tokens-meta", required=True)
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--work-dir", required=True, help="resume states and milestones (kept)")
    s.add_argument("--checkpoint-dir", help="if given, link every milestone here as ckpt-<W>")
    # Not `--log`: under torchrun that prefix-matches torchrun's own --log-dir and is refused.
    s.add_argument(
        "--log-parquet", "--log", dest="log", help="if given, link the pretraining log Parquet here"
    )
    _gpu_flag(s)
    s.set_defaults(func=_pretrain)

    from storyrl.analysis.targets import add_parser as add_analysis

    add_analysis(sub, _section)

    t = sub.add_parser("teacher", help="the teacher that scores stories")
    tsub = t.add_subparsers(dest="teacher_command", required=True)
    s = tsub.add_parser("score", help="score a Parquet of stories (columns prompt, continuation)")
    s.add_argument("--stories", required=True, help="input Parquet with prompt, continuation")
    s.add_argument("--output", required=True, help="output Parquet (table teacher_scores)")
    s.add_argument(
        "--section",
        default="{}",
        help="JSON: {teacher: {...}, reward: {...}, "
        "max_new_tokens, seed, batch_size}; defaults: the offline heuristic teacher",
    )
    s.add_argument("--cache", default=None, help="SQLite score cache (local disk)")
    s.set_defaults(func=_teacher_score)
    s = tsub.add_parser(
        "agree", help="re-score a sample of RL runs' stories with a further teacher (agreement)"
    )
    s.add_argument("--name", required=True, help="the further teacher's name (agreement.teachers)")
    s.add_argument("--teacher", type=_section(C.AgreementTeacher), required=True)
    s.add_argument("--sample", required=True, help='JSON: {"stories_per_run": N, "seed": S}')
    s.add_argument("--rollouts", nargs="+", required=True, help="rollouts.parquet of each run")
    s.add_argument("--output", nargs="+", required=True, help="one agreement Parquet per run")
    _gpu_flag(s)
    s.set_defaults(func=_teacher_agree)

    s = sub.add_parser("rl", help="reinforcement learning from a pretraining checkpoint")
    rl = s.add_subparsers(dest="rl_command", required=True)
    s = rl.add_parser("train", help="run (or resume) one RL run until its word budget ends")
    from storyrl.config import RLConfig

    s.add_argument(
        "--section", type=_section(RLConfig), required=True, help="the rl section (JSON)"
    )
    s.add_argument("--checkpoint", required=True, help="pretraining checkpoint (HF folder)")
    s.add_argument("--output", required=True, help="run folder (tables, checkpoints, state)")
    s.add_argument("--run-id", help="default: the output folder's name")
    s.add_argument("--teacher", type=json.loads, default={}, help="teacher section (JSON)")
    s.add_argument("--reward", type=json.loads, default={}, help="reward section (JSON)")
    s.add_argument("--teacher-cache", help="score cache file")
    s.add_argument(
        "--scorer", help="'module:factory' building another scorer (instead of the teacher)"
    )
    s.add_argument(
        "--pretrain-words", type=parse_words, help="words the checkpoint saw in pretraining"
    )
    s.add_argument(
        "--corpus-words", type=parse_words, help="distinct words of its pretraining corpus"
    )
    s.add_argument("--corpus-stats", help="or: the corpus's stats.json (from `storyrl subset`)")
    _gpu_flag(s)
    s.set_defaults(func=_rl_train)
    s = rl.add_parser(
        "pack",
        help="train several runs side by side on one GPU, with one teacher "
        "server for those whose teacher is vllm (config section rl_sharing)",
    )
    s.add_argument(
        "--sharing",
        type=_section(C.RLSharingConfig),
        required=True,
        help="the rl_sharing section (JSON)",
    )
    s.add_argument(
        "--run",
        type=json.loads,
        action="append",
        required=True,
        dest="runs",
        help="one run (JSON): run_id, section, teacher, reward, checkpoint, output, "
        "log, and optionally teacher_cache, pretrain_words, corpus_stats; repeat it",
    )
    s.add_argument("--server-log", required=True, help="the teacher server's log file")
    _gpu_flag(s)
    s.set_defaults(func=_rl_pack)

    _add_eval(sub)

    _add_submission(sub)

    s = sub.add_parser("demo-eval", help="write demo evaluation sets in the official layout")
    s.add_argument("--out", required=True, help="the evaluation_data/ folder to write")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-full", type=int, default=200, help="items per full set (file)")
    s.add_argument("--n-fast", type=int, default=50, help="items per fast set (file)")
    s.set_defaults(func=_demo_eval)

    return p


def _demo_corpus(args):
    from storyrl.demo_corpus import generate

    counts = generate(args.output, args.words, args.seed)
    print(json.dumps(counts))


def _subset(args):
    from storyrl.corpus import build_subset

    build_subset(args.section, args.path, args.output, args.stats)


def _tokenizer(args):
    from storyrl.tokenizer import train_tokenizer

    train_tokenizer(args.section, args.subset, args.output)


def _tokens(args):
    from storyrl.tokens import encode_corpus

    cfg = args.section
    encode_corpus(
        args.subset,
        args.tokenizer,
        args.output,
        args.meta,
        group_rows=cfg.group_rows if cfg else None,
        ratio_rows=cfg.ratio_rows if cfg else None,
    )


def _pretrain(args):
    from pathlib import Path

    from storyrl.pretrain import pretrain, publish
    from storyrl.units import words_label

    job = args.section
    pretrain(
        args.tokens,
        args.tokens_meta,
        args.tokenizer,
        args.work_dir,
        job.run_id,
        job.model,
        job.training,
        job.milestones,
        job.seed,
    )
    if args.checkpoint_dir:
        outs = {w: Path(args.checkpoint_dir) / f"ckpt-{words_label(w)}" for w in job.milestones}
        publish(args.work_dir, outs, args.log)


def _teacher_score(args):
    from pydantic import ValidationError

    from storyrl.config import ConfigError
    from storyrl.schemas import SchemaError
    from storyrl.teacher import TeacherFailure
    from storyrl.teacher.score_file import ScoreSection, score_file

    try:
        section = ScoreSection.model_validate(json.loads(args.section))
    except (json.JSONDecodeError, ValidationError) as err:
        raise ConfigError(f"--section: bad teacher score section: {err}") from None
    try:
        counts = score_file(args.stories, args.output, section, args.cache)
    except (SchemaError, TeacherFailure) as err:
        # Scored replies are in the cache (if any): a rerun resumes where this one stopped.
        print(f"storyrl teacher score: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(counts))


def _teacher_agree(args):
    from storyrl.agreement import rescore

    sample = json.loads(args.sample)
    for row in rescore(
        args.name,
        args.teacher,
        args.rollouts,
        args.output,
        sample["stories_per_run"],
        sample["seed"],
    ):
        print(json.dumps(row))


class Stop(Exception):
    """A stage ends with this one-line message and exit status 2 (no traceback)."""


def _rl_train(args):
    from storyrl.rl import scoring
    from storyrl.rl.train import train

    cfg = args.section
    scorer = (
        scoring.scorer_from_name(args.scorer)
        if args.scorer
        else scoring.teacher_scorer(
            args.teacher, args.reward, cfg.sampling.max_new_tokens, cfg.seed, args.teacher_cache
        )
    )
    corpus_words = args.corpus_words
    if corpus_words is None and args.corpus_stats:
        corpus_words = int(json.loads(Path(args.corpus_stats).read_text())["words"])
    from storyrl.teacher import TeacherFailure

    try:
        summary = train(
            args.checkpoint,
            args.output,
            cfg,
            scorer,
            run_id=args.run_id,
            pretrain_words_seen=args.pretrain_words,
            corpus_words=corpus_words,
        )
    except TeacherFailure as err:
        # The state of the last finished step is on disk: a rerun resumes from it.
        raise Stop(
            f"storyrl rl train: {err}; the run's state is kept in {args.output}, a rerun "
            "resumes from its last finished step"
        ) from None
    finally:
        if isinstance(scorer, scoring.TeacherScorer):
            scorer.close()  # the teacher's engine or client, and its cache
    print(json.dumps(summary))


def _rl_pack(args):
    from pydantic import ValidationError

    from storyrl.config import ConfigError, RLConfig
    from storyrl.rl.pack import PackError, PackRun, run_pack

    runs = []
    for i, raw in enumerate(args.runs):
        try:
            runs.append(PackRun.model_validate(raw))
            RLConfig.model_validate(runs[-1].section)
        except ValidationError as err:
            raise ConfigError(f"--run {i + 1}: bad pack run: {err}") from None
    try:
        status = run_pack(runs, args.sharing, args.server_log, require_gpu=args.require_gpu)
    except PackError as err:
        raise Stop(f"storyrl rl pack: {err}") from None
    if status:
        raise SystemExit(status)


def _demo_eval(args):
    from storyrl.demo_eval import generate

    counts = generate(args.out, seed=args.seed, n_full=args.n_full, n_fast=args.n_fast)
    for (task, variant), n in counts.items():
        print(f"{variant}\t{task}\t{n}")


def _add_eval(sub):
    e = sub.add_parser("eval", help="evaluate a checkpoint")
    esub = e.add_subparsers(dest="eval_command", required=True)

    def common(q):
        q.add_argument("--batch-size", type=int, default=64, help="sequences per forward pass")
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
    q.set_defaults(func=lambda a: _lazy("storyrl.evaluate.zero_shot", "cli_one")(a))

    from storyrl.babylm_spec import ZERO_SHOT_TASKS as TASKS

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
    q.add_argument("--output-dir", default=None, help="also write the official layout here")
    q.add_argument("--parquet", default=None, help="write the eval_scores rows here")
    q.add_argument("--model-id", default=None, help="default: the model folder's name")
    q.add_argument("--pretrain-words", default=None, help="e.g. 20M")
    q.add_argument("--rl-words", default=None, help="e.g. 1M")
    common(q)
    _gpu_flag(q)
    q.set_defaults(func=lambda a: _lazy("storyrl.evaluate.zero_shot", "cli_suite")(a))

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
        type=_section(StoryEvalConfig),
        required=True,
        help="the story evaluation section (JSON)",
    )
    q.add_argument(
        "--rl",
        type=_section(RLConfig),
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
    _gpu_flag(q)
    q.set_defaults(func=lambda a: _lazy("storyrl.evaluate.stories", "cli_stories")(a))

    from storyrl.babylm_spec import GLUE_TASKS
    from storyrl.config import OfficialConfig

    o = esub.add_parser(
        "official",
        help="GLUE, reading and AoA through a checkout of the "
        "official BabyLM pipeline (config section `official`)",
    )
    osub = o.add_subparsers(dest="official_command", required=True)

    def official(q, model=True):
        q.add_argument(
            "--section",
            type=_section(OfficialConfig),
            required=True,
            help="the official section (JSON): checkout, interpreter, hyperparameters",
        )
        if model:
            q.add_argument("--model", required=True, help="checkpoint folder")

    q = osub.add_parser("glue", help="fine-tune on one GLUE task (as eval_finetuning.sh)")
    official(q)
    q.add_argument("--task", required=True, choices=list(GLUE_TASKS))
    q.add_argument("--output-dir", required=True, help="the pipeline's --results_dir")
    q.set_defaults(func=lambda a: _lazy("storyrl.evaluate.official", "cli_glue")(a))

    q = osub.add_parser("reading", help="eye-tracking and self-paced reading scores")
    official(q)
    q.add_argument("--output-dir", required=True, help="the pipeline's --output_dir")
    q.add_argument(
        "--variant",
        choices=["full", "fast"],
        default="full",
        help="full_eval/ or fast_eval/ reading data (fast: a submission's checkpoints)",
    )
    q.set_defaults(func=lambda a: _lazy("storyrl.evaluate.official", "cli_reading")(a))

    q = osub.add_parser("collect", help="one model's GLUE and reading outputs -> eval_scores")
    official(q)
    q.add_argument("--glue-dir", help="folder of <task>/ results folders (glue)")
    q.add_argument("--reading-dir", help="output folder of the reading run")
    q.add_argument("--parquet", required=True)
    q.add_argument("--model-id", required=True)
    q.add_argument("--pretrain-words", type=parse_words, required=True)
    q.add_argument("--rl-words", type=parse_words, help="default: from storyrl_rl.json, else 0")
    q.set_defaults(func=lambda a: _lazy("storyrl.evaluate.official", "cli_collect")(a))

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
    q.set_defaults(func=lambda a: _lazy("storyrl.evaluate.aoa_score", "cli_aoa")(a))


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
    s.set_defaults(func=lambda a: _lazy("storyrl.evaluate.submission", "cli_submission")(a))


def _lazy(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


def _check_config(args):
    from storyrl.config import load

    cfg = load(*args.files)
    print(json.dumps(cfg.model_dump(), indent=2, default=str))


def _schema(args):
    from storyrl.atomic import atomic_path
    from storyrl.config import schema_text

    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output) as tmp:
            Path(tmp).write_text(schema_text(), encoding="utf-8")
    else:
        sys.stdout.write(schema_text())


def main(argv=None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # HTTP clients log one INFO line per request: 331K lines for one paper-size RL run.
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    from storyrl.analysis import AnalysisError
    from storyrl.babylm_spec import TrackError
    from storyrl.config import ConfigError
    from storyrl.corpus import CorpusError
    from storyrl.device import DeviceError, require_gpu
    from storyrl.evaluate.official import OfficialError
    from storyrl.schemas import SchemaError

    try:
        if getattr(args, "require_gpu", False):
            # Before anything is read or written: a GPU job on a node without one stops here.
            require_gpu(
                " ".join(
                    [
                        args.command,
                        *filter(
                            None,
                            (
                                getattr(args, "rl_command", None),
                                getattr(args, "eval_command", None),
                            ),
                        ),
                    ]
                )
            )
        args.func(args)
    except (
        ConfigError,
        CorpusError,
        SchemaError,
        AnalysisError,
        OfficialError,
        TrackError,
        DeviceError,
    ) as err:
        print(f"storyrl: {err}", file=sys.stderr)
        return 2
    except Stop as err:
        print(err, file=sys.stderr)
        return 2
    except OSError as err:
        # A full, read-only or missing disk: what was written is complete or absent (atomic
        # writes), so the one thing a user needs is the path.
        print(f"storyrl: {os_error_message(err)}", file=sys.stderr)
        return 2
    return 0


def os_error_message(err: OSError) -> str:
    if err.filename is None:
        return str(err)
    return f"{err.filename}: {err.strerror or err}"


if __name__ == "__main__":
    sys.exit(main())
