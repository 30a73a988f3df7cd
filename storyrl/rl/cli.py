"""`storyrl rl train` and `storyrl rl pack`: the RL stage's subcommands, and the only caller of
the run loop (storyrl.rl.train)."""

import json
from pathlib import Path

from storyrl import config as C
from storyrl.config.commands import Stop, gpu_flag, progress_flag, section
from storyrl.core.units import parse_words


def add_parser(sub) -> None:
    s = sub.add_parser("rl", help="reinforcement learning from a pretraining checkpoint")
    rl = s.add_subparsers(dest="rl_command", required=True)
    s = rl.add_parser("train", help="run (or resume) one RL run until its word budget ends")
    s.add_argument(
        "--section", type=section(C.RLConfig), required=True, help="the rl section (JSON)"
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
    s.add_argument(
        "--on-change",
        choices=["refuse", "move"],
        default="refuse",
        help="an output folder holding a run made with other settings: refuse (default), or "
        "move the old run aside into <output>/stale-<time>/ and start afresh (the workflow)",
    )
    gpu_flag(s)
    progress_flag(s)
    s.set_defaults(func=train_command)
    s = rl.add_parser(
        "pack",
        help="train several runs side by side on one GPU, with one teacher "
        "server for those whose teacher is vllm (config section rl_sharing)",
    )
    s.add_argument(
        "--sharing",
        type=section(C.RLSharingConfig),
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
    gpu_flag(s)
    progress_flag(s)
    s.set_defaults(func=pack_command)


def train_command(args) -> None:
    from storyrl.rl.run import Diverged
    from storyrl.rl.train import train
    from storyrl.stories import scoring
    from storyrl.stories.teacher import TeacherFailure

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
    try:
        summary = train(
            args.checkpoint,
            args.output,
            cfg,
            scorer,
            run_id=args.run_id,
            pretrain_words_seen=args.pretrain_words,
            corpus_words=corpus_words,
            on_change=args.on_change,
        )
    except Diverged as err:
        raise Stop(f"storyrl rl train: {err}") from None
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


def pack_command(args) -> None:
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
        status = run_pack(
            runs,
            args.sharing,
            args.server_log,
            require_gpu=args.require_gpu,
            progress_fd=args.progress_fd,
        )
    except PackError as err:
        raise Stop(f"storyrl rl pack: {err}") from None
    if status:
        raise SystemExit(status)
