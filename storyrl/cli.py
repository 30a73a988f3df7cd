"""The `storyrl` command: one subcommand per stage entry point; every rule calls one of these.

Each stage adds its own subcommands (`add_parser(sub)` in its CLI module, below); this module
collects them, runs the one asked for and is the error boundary: a known failure prints one line
and exits 2, with no traceback.
"""

import importlib
import logging
import sys

from storyrl.config.commands import Stop

STAGES = (
    "storyrl.plan.cli",  # check-config, record-config, schema
    "storyrl.pretrain.cli",  # demo-corpus, subset, tokenizer, tokens, pretrain
    "storyrl.analysis.targets",  # analysis
    "storyrl.stories.cli",  # teacher
    "storyrl.rl.cli",  # rl
    "storyrl.evaluate.cli",  # eval, submission, demo-eval
    "storyrl.analysis.share",  # share
    "storyrl.docs.cli",  # docs
)
"""The modules that add subcommands, in the order `storyrl --help` lists them. Only their parser
code is imported here; each handler imports its stage when it runs."""


def build_parser():
    import argparse

    from storyrl.core.redact import redact

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            # A bad value is echoed whole: a teacher section's JSON holds the server's URL.
            super().error(redact(message))

    p = Parser(prog="storyrl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for module in STAGES:
        importlib.import_module(module).add_parser(sub)
    return p


def main(argv=None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # HTTP clients log one INFO line per request: 331K lines for one paper-size RL run.
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from storyrl.core.redact import RedactingFilter, redact

    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    args = build_parser().parse_args(argv)
    from storyrl.analysis import AnalysisError
    from storyrl.config import ConfigError
    from storyrl.core.babylm_spec import TrackError
    from storyrl.core.checkpoints import CheckpointError
    from storyrl.core.device import DeviceError, require_gpu
    from storyrl.core.schemas import SchemaError
    from storyrl.data.corpus import CorpusError
    from storyrl.evaluate.official import OfficialError

    if getattr(args, "progress_fd", None) is not None:
        from storyrl.training.progress import echo_to

        echo_to(args.progress_fd)
    try:
        if getattr(args, "require_gpu", False):
            # Before anything is read or written: a GPU job on a node without one stops here.
            words = (
                args.command,
                getattr(args, "rl_command", None),
                getattr(args, "eval_command", None),
            )
            require_gpu(" ".join(filter(None, words)))
        args.func(args)
    except (
        ConfigError,
        CorpusError,
        SchemaError,
        AnalysisError,
        OfficialError,
        TrackError,
        DeviceError,
        CheckpointError,
    ) as err:
        print(f"storyrl: {redact(str(err))}", file=sys.stderr)
        return 2
    except Stop as err:
        print(redact(str(err)), file=sys.stderr)
        return 2
    except OSError as err:
        # A full, read-only or missing disk: what was written is complete or absent (atomic
        # writes), so the one thing a user needs is the path.
        print(f"storyrl: {redact(os_error_message(err))}", file=sys.stderr)
        return 2
    return 0


def os_error_message(err: OSError) -> str:
    if err.filename is None:
        return str(err)
    return f"{err.filename}: {err.strerror or err}"


if __name__ == "__main__":
    sys.exit(main())
