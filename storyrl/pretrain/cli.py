"""The pretraining stage's subcommands: the demo corpus, the subset, the tokenizer, the token
stream and the pretraining run itself."""

import json

from storyrl import config as C
from storyrl.config.commands import gpu_flag, progress_flag, section
from storyrl.core.units import parse_words


def add_parser(sub) -> None:
    s = sub.add_parser("demo-corpus", help="write the synthetic BabyLM-format corpus")
    s.add_argument("--output", required=True, help="folder to write (train_demo/, dev/)")
    s.add_argument("--words", type=parse_words, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=demo_corpus_command)

    s = sub.add_parser("subset", help="read a corpus and write its seeded subset as Parquet")
    s.add_argument("--section", type=section(C.CorpusConfig), required=True)
    s.add_argument("--path", required=True, help="the corpus (file or folder)")
    s.add_argument("--output", required=True, help="subset Parquet (text, source)")
    s.add_argument("--stats", required=True, help="JSON with lines and words per source")
    s.set_defaults(func=subset_command)

    s = sub.add_parser("tokenizer", help="train the byte-level BPE on a subset")
    s.add_argument("--section", type=section(C.TokenizerConfig), required=True)
    s.add_argument("--subset", required=True)
    s.add_argument("--output", required=True, help="tokenizer folder")
    s.set_defaults(func=tokenizer_command)

    s = sub.add_parser("tokens", help="tokenize a subset once into a flat token file")
    s.add_argument("--subset", required=True)
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--output", required=True, help="token stream (.bin)")
    s.add_argument("--meta", required=True, help="JSON with counts and tokens per word")
    s.add_argument(
        "--section",
        type=section(C.CorpusConfig),
        help="the corpus section (JSON): its grouping and tokens-per-word settings are used",
    )
    s.set_defaults(func=tokens_command)

    s = sub.add_parser("pretrain", help="train (or resume) one pretraining run")
    s.add_argument("--section", type=section(C.PretrainJob), required=True)
    s.add_argument("--tokens", required=True)
    s.add_argument("--tokens-meta", required=True)
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--work-dir", required=True, help="resume states and milestones (kept)")
    s.add_argument("--checkpoint-dir", help="if given, link every milestone here as ckpt-<W>")
    # Not `--log`: under torchrun that prefix-matches torchrun's own --log-dir and is refused.
    s.add_argument(
        "--log-parquet", "--log", dest="log", help="if given, link the pretraining log Parquet here"
    )
    gpu_flag(s)
    progress_flag(s)
    s.set_defaults(func=pretrain_command)


def demo_corpus_command(args) -> None:
    from storyrl.data.demo_corpus import generate

    counts = generate(args.output, args.words, args.seed)
    print(json.dumps(counts))


def subset_command(args) -> None:
    from storyrl.data.corpus import build_subset

    build_subset(args.section, args.path, args.output, args.stats)


def tokenizer_command(args) -> None:
    from storyrl.data.tokenizer import train_tokenizer

    train_tokenizer(args.section, args.subset, args.output)


def tokens_command(args) -> None:
    from storyrl.core.schemas import config_hash
    from storyrl.data.tokens import encode_corpus

    cfg = args.section
    encode_corpus(
        args.subset,
        args.tokenizer,
        args.output,
        args.meta,
        group_rows=cfg.group_rows if cfg else None,
        ratio_rows=cfg.ratio_rows if cfg else None,
        ratio_seed=cfg.seed if cfg and cfg.ratio_sample == "reshuffled" else None,
        pop_group_eos=cfg.pop_group_eos if cfg else False,
        corpus_hash=config_hash(cfg.model_dump(mode="json")) if cfg else None,
    )


def pretrain_command(args) -> None:
    from pathlib import Path

    from storyrl.core.units import checkpoint_name
    from storyrl.pretrain.export import publish
    from storyrl.pretrain.train import pretrain

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
        outs = {w: Path(args.checkpoint_dir) / checkpoint_name(w) for w in job.milestones}
        publish(args.work_dir, outs, args.log)
