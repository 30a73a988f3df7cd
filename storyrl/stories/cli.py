"""`storyrl teacher score`: the teacher scores a Parquet of stories outside any training run;
`storyrl teacher agree`: a further teacher re-scores a sample of RL runs' stories."""

import json

from storyrl.config import AgreementTeacher
from storyrl.config.commands import gpu_flag, section


def add_parser(sub) -> None:
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
    s.set_defaults(func=score)

    s = tsub.add_parser(
        "agree", help="re-score a sample of RL runs' stories with a further teacher (agreement)"
    )
    s.add_argument("--name", required=True, help="the teacher's name in agreement.teachers")
    s.add_argument("--teacher", type=section(AgreementTeacher), required=True)
    s.add_argument("--sample", required=True, help='JSON: {"stories_per_run": N, "seed": S}')
    s.add_argument("--rollouts", nargs="+", required=True, help="rollouts.parquet of each run")
    s.add_argument("--output", nargs="+", required=True, help="one agreement Parquet per run")
    gpu_flag(s)
    s.set_defaults(func=agree)


def agree(args) -> None:
    from storyrl.stories.teacher.agreement import rescore

    sample = json.loads(args.sample)
    n, seed = sample["stories_per_run"], sample["seed"]
    for row in rescore(args.name, args.teacher, args.rollouts, args.output, n, seed):
        print(json.dumps(row))


def score(args) -> None:
    from pydantic import ValidationError

    from storyrl.config import ConfigError
    from storyrl.config.commands import Stop
    from storyrl.core.schemas import SchemaError
    from storyrl.stories.score_file import ScoreSection, score_file
    from storyrl.stories.teacher import TeacherFailure

    try:
        section = ScoreSection.model_validate(json.loads(args.section))
    except (json.JSONDecodeError, ValidationError) as err:
        raise ConfigError(f"--section: bad teacher score section: {err}") from None
    try:
        counts = score_file(args.stories, args.output, section, args.cache)
    except (SchemaError, TeacherFailure) as err:
        # Scored replies are in the cache (if any): a rerun resumes where this one stopped.
        raise Stop(f"storyrl: {err}") from None
    print(json.dumps(counts))
