"""What a pretraining run gives out: a Hugging Face folder per word milestone, exported by the
Trainer callback `Milestones` when the step is reached (work_dir/milestones/ckpt-<W>/), the
pretraining log (work_dir/log.parquet), and `publish`, which links both to the rule's outputs.
The training loop that drives them is `storyrl.pretrain.train`'s."""

import logging
import os
import shutil
import threading
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from storyrl.core.atomic import atomic_path, honour_umask
from storyrl.core.checkpoints import CHECKPOINT_INFO, TOKENIZER_KEY, write_info
from storyrl.core.schemas import make_metadata, write_table
from storyrl.core.units import checkpoint_name, words_label
from storyrl.pretrain.schedule import Plan

log = logging.getLogger(__name__)

STATE_FILES = {
    "optimizer.pt",
    "scheduler.pt",
    "trainer_state.json",
    "training_args.bin",
    "scaler.pt",
}  # and rng_state*.pth (one per process)


class Milestones(TrainerCallback):
    """Save at milestone steps and export each as a Hugging Face folder (rank 0); stop on
    SIGTERM, every process at the same step."""

    def __init__(
        self, plan: Plan, out_dir: Path, run_id: str, sigterm: threading.Event, tokenizer_sha256
    ):
        self.by_step = {s: w for w, s in plan.milestone_steps.items()}
        self.plan, self.out_dir, self.run_id, self.sigterm = plan, out_dir, run_id, sigterm
        self.tokenizer_sha256 = tokenizer_sha256
        self.terminate = False

    def on_step_end(self, args, state, control, **kw):
        self.terminate = self.terminate or self.sigterm.is_set()
        if args.world_size > 1:
            # The signal may reach some processes only, or in different steps: stop when any
            # process got it, so that all save the same step (or a collective would hang).
            flag = torch.tensor([int(self.terminate)], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self.terminate = bool(flag.item())
        if state.global_step in self.by_step or self.terminate:
            control.should_save = True
        if self.terminate:
            control.should_training_stop = True

    def on_save(self, args, state, control, **kw):
        if not state.is_world_process_zero:
            return
        # The Trainer's resume state (its weights are written 600) stays in the run's folder.
        honour_umask(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        words = self.by_step.get(state.global_step)
        if words is None:
            return
        target = self.out_dir / checkpoint_name(words)
        if target.exists():
            return
        src = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        info = {
            "run_id": self.run_id,
            "milestone_words": words,
            "step": state.global_step,
            "words_seen": self.plan.words_at(state.global_step),
            "tokens_seen": state.global_step * self.plan.tokens_per_step,
            TOKENIZER_KEY: self.tokenizer_sha256,
        }
        with atomic_path(target, is_dir=True) as tmp:
            shutil.copytree(
                src,
                tmp,
                dirs_exist_ok=True,
                ignore=lambda d, names: [
                    n for n in names if n in STATE_FILES or n.startswith("rng_state")
                ],
            )
            write_info(tmp, CHECKPOINT_INFO, info)
        log.info(
            "milestone %s words at step %d -> %s", words_label(words), state.global_step, target
        )


def write_log(trainer, path: Path, run_id: str, settings: dict) -> None:
    rows = [r for r in trainer.state.log_history if "loss" in r]
    data = {
        "step": [r["step"] for r in rows],
        "epoch": [r.get("epoch") for r in rows],
        "words_seen": [r.get("words_seen") for r in rows],
        "tokens_seen": [r.get("tokens_seen") for r in rows],
        "loss": [r["loss"] for r in rows],
        "learning_rate": [r.get("learning_rate") for r in rows],
        "grad_norm": [r.get("grad_norm") for r in rows],
        "tokens_per_s": [r.get("tokens_per_s") for r in rows],
    }
    # The milestones let the loss figure mark the checkpoints from the log alone.
    write_table(
        path,
        "pretrain_log",
        data,
        make_metadata("pretrain_log", settings, run_id=run_id, milestones=settings["milestones"]),
    )


def publish(work_dir, outputs: dict[int, str | Path], log_out: str | Path | None = None) -> None:
    """Link (no copy) each milestone folder and the log to the rule's declared outputs; rank 0
    only under torchrun."""
    if int(os.environ.get("RANK", "0")):
        return
    work_dir = Path(work_dir)
    for words, out in outputs.items():
        src = work_dir / "milestones" / checkpoint_name(words)
        if same_files(src, out):
            # Untouched: a new time on an identical checkpoint would make every evaluation and
            # RL run built on it look out of date.
            log.info("%s: already published with the same files; left as it is", out)
            continue
        with atomic_path(out, is_dir=True) as tmp:
            shutil.copytree(src, tmp, copy_function=os.link, dirs_exist_ok=True)
    if log_out and not same_files(work_dir / "log.parquet", log_out):
        with atomic_path(log_out) as tmp:
            os.link(work_dir / "log.parquet", tmp)


def same_files(a, b) -> bool:
    """Whether `b` holds what `a` holds: the same file, or a folder with the same names and the
    same bytes in each (hard links are compared by inode, other files by content)."""
    import filecmp

    a, b = Path(a), Path(b)
    if a.is_file() and b.is_file():
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    if not (a.is_dir() and b.is_dir()):
        return False
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*"))
    if names_a != sorted(str(p.relative_to(b)) for p in b.rglob("*")):
        return False
    return all(same_files(a / n, b / n) for n in names_a if (a / n).is_file())
