"""A run folder belongs to the settings it was started with: a resume under
another configuration is refused from the command line and started afresh (the old run moved
aside) by the workflow, never mixed."""

import json
import shutil

import pandas as pd
import pytest

from rl_toys import ShareScorer, make_checkpoint
from storyrl.cli import main
from storyrl.config import RLConfig
from storyrl.core.schemas import read_metadata
from storyrl.rl.train import train
from storyrl.testing import rl_train_args
from storyrl.training.run_config import RunConfigMismatch

TOY = {
    "prompts": ["once upon a time"],
    "batch_size": 4,
    "budget": 100_000,
    "threads": 1,
    "max_steps": 3,
    "state_every": 1,
    "state_every_s": None,
    "sampling": {"max_new_tokens": 4},
    "ppo": {"lr": 1e-3},
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt")


def killed_run(ckpt, run, **over):
    """A run stopped after step 3 with its state saved (a finished run less its outputs)."""
    train(ckpt, run, RLConfig.model_validate({**TOY, **over}), ShareScorer())
    (run / "summary.json").unlink()
    shutil.rmtree(run / "final")
    return run


@pytest.mark.parametrize(
    "change, named",
    [
        ({"ppo": {"lr": 5e-3}}, "rl.ppo.lr (0.001 -> 0.005)"),
        ({"batch_size": 8}, "rl.batch_size (4 -> 8)"),
    ],
)
def test_a_resume_under_other_settings_is_refused(ckpt, tmp_path, change, named):
    run = killed_run(ckpt, tmp_path / "run")
    cfg = RLConfig.model_validate({**TOY, "max_steps": 5, **change})
    with pytest.raises(RunConfigMismatch) as err:
        train(ckpt, run, cfg, ShareScorer())
    assert str(run) in str(err.value) and named in str(err.value)
    assert not (run / "summary.json").exists()  # nothing of the other settings written


def test_another_starting_checkpoint_is_refused(ckpt, tmp_path):
    run = killed_run(ckpt, tmp_path / "run")
    other = make_checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(RunConfigMismatch, match=r"checkpoint\.sha256"):
        train(other, run, RLConfig.model_validate({**TOY, "max_steps": 5}), ShareScorer())


def test_a_finished_run_is_not_returned_for_other_settings(ckpt, tmp_path):
    run = tmp_path / "run"
    train(ckpt, run, RLConfig.model_validate(TOY), ShareScorer())
    with pytest.raises(RunConfigMismatch):
        train(ckpt, run, RLConfig.model_validate({**TOY, "seed": 7}), ShareScorer())


def test_operational_fields_may_change_on_resume(ckpt, tmp_path):
    run = killed_run(ckpt, tmp_path / "run")
    cfg = RLConfig.model_validate({**TOY, "max_steps": 3, "state_every": 2})
    assert train(ckpt, run, cfg, ShareScorer())["steps"] == 3


@pytest.fixture
def torch_threads():
    """Set torch's CPU threads as OMP_NUM_THREADS would at start-up; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_a_resume_under_another_thread_count_is_refused(ckpt, tmp_path, torch_threads):
    """CPU reductions add in another order on another thread count: the resumed run would end
    on a third result. `rl.threads`, or when it is unset the threads torch starts with
    (OMP_NUM_THREADS), are the run's, and a resume must keep them."""
    torch_threads(1)
    run = killed_run(ckpt, tmp_path / "run", threads=None)
    torch_threads(2)
    for threads in (None, 2):  # OMP_NUM_THREADS=2, or rl.threads: 2
        cfg = RLConfig.model_validate({**TOY, "threads": threads})
        with pytest.raises(RunConfigMismatch) as err:
            train(ckpt, run, cfg, ShareScorer())
        assert str(run) in str(err.value) and "rl.threads (1 -> 2)" in str(err.value)
    assert not (run / "summary.json").exists()
    cfg = RLConfig.model_validate({**TOY, "threads": 1})
    assert train(ckpt, run, cfg, ShareScorer())["steps"] == 3


def test_a_run_recorded_without_its_thread_count_resumes_with_a_warning(ckpt, tmp_path, caplog):
    run = killed_run(ckpt, tmp_path / "run")
    record = json.loads((run / "run_config.json").read_text())
    del record["rl"]["threads"]
    (run / "run_config.json").write_text(json.dumps(record))
    with caplog.at_level("WARNING", logger="storyrl.training.run_config"):
        assert train(ckpt, run, RLConfig.model_validate(TOY), ShareScorer())["steps"] == 3
    assert f"{run}: its run was recorded without rl.threads" in caplog.text
    assert json.loads((run / "run_config.json").read_text())["rl"]["threads"] == 1


def test_move_starts_afresh_and_keeps_the_old_run(ckpt, tmp_path):
    """What the workflow does (`--on-change move`): the rerun is the new settings' run from
    step 1, one config hash in every row; the old run lies in <run>/stale-<time>/."""
    run = killed_run(ckpt, tmp_path / "run")
    new = {**TOY, "ppo": {"lr": 5e-3}}
    train(ckpt, run, RLConfig.model_validate(new), ShareScorer(), on_change="move")
    fresh = tmp_path / "fresh"
    train(ckpt, fresh, RLConfig.model_validate(new), ShareScorer())
    cols = ["step", "teacher_score_mean", "kl", "policy_loss", "value_loss"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(run / "steps.parquet")[cols], pd.read_parquet(fresh / "steps.parquet")[cols]
    )
    hashes = {read_metadata(f)["config_hash"] for f in (run / "parts" / "steps").iterdir()}
    assert hashes == {read_metadata(fresh / "steps.parquet")["config_hash"]}
    (stale,) = run.glob("stale-*")
    assert json.loads((stale / "run_config.json").read_text())["rl"]["ppo"]["lr"] == 1e-3
    assert (stale / "state" / "state.pt").exists() and len(
        list((stale / "parts" / "steps").iterdir())
    ) == 3


def test_the_cli_refuses_in_one_line(ckpt, tmp_path, capsys):
    run = killed_run(ckpt, tmp_path / "run")
    cfg = {**TOY, "max_steps": 5, "ppo": {"lr": 5e-3}}
    assert main(rl_train_args(cfg, ckpt, run, scorer="rl_toys:ShareScorer")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"storyrl: {run}: holds a run made with other settings")
    assert "ppo.lr" in err and "\n" not in err


def test_the_workflow_starts_a_changed_run_afresh(tmp_path):
    """A param change reruns the `rl` job; its state folder is no output and survives, so the
    rule asks for `--on-change move` (the rerun is the new settings' run, not the old one's)."""
    from helpers import snakemake

    out = snakemake(tmp_path, "-n", "-p", "results/rl/30K-seed42-base/summary.json").stdout
    job = out[out.index("rule rl:") :]
    shell = job[job.index("Shell command") :]
    # The command line, up to the job after it (its JSON sections make it long).
    end = min((i for i in (shell.find("\nrule "), shell.find("\n[")) if i > 0), default=None)
    assert "--on-change move" in shell[:end]


def test_a_start_that_wrote_nothing_does_not_bind_the_folder(ckpt, tmp_path):
    """A first start that stopped before any step (here: a broken checkpoint, repaired since)
    leaves only the record; the next start with other settings just goes ahead."""
    run, broken = tmp_path / "run", make_checkpoint(tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"cut short")
    with pytest.raises(Exception, match="cannot load the model"):
        train(broken, run, RLConfig.model_validate(TOY), ShareScorer())
    assert train(ckpt, run, RLConfig.model_validate(TOY), ShareScorer())["steps"] == 3


SNAKEFILE = """
rule rl:
    output: "run/summary.json"
    params: section={section!r}
    log: "rl.log"
    shell:
        "{python} -m storyrl.cli rl train --section {{params.section:q}} --checkpoint {ckpt}"
        " --output run --scorer rl_toys:ShareScorer --on-change move > {{log}} 2>&1"
"""


def test_a_snakemake_rerun_after_a_param_change_is_the_new_run(ckpt, tmp_path):
    """The job reruns for its changed param; its state folder survived (no output). The rerun
    trains the new settings from step 1 instead of finishing the old run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from helpers import ROOT

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    exe = str(Path(sys.executable).with_name("snakemake"))

    def run(cfg):
        snakefile = SNAKEFILE.format(section=json.dumps(cfg), python=sys.executable, ckpt=ckpt)
        (tmp_path / "Snakefile").write_text(snakefile)
        cmd = [exe, "--cores", "1", "-s", str(tmp_path / "Snakefile"), "-d", str(tmp_path)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:] + (tmp_path / "rl.log").read_text()[-3000:]
        return read_metadata(tmp_path / "run" / "steps.parquet")["config_hash"]

    old = run(TOY)
    new = run({**TOY, "ppo": {"lr": 5e-3}})
    assert new != old
    hashes = {
        read_metadata(f)["config_hash"] for f in (tmp_path / "run" / "parts" / "steps").iterdir()
    }
    assert hashes == {new}
    (stale,) = (tmp_path / "run").glob("stale-*")
    assert read_metadata(stale / "steps.parquet")["config_hash"] == old
