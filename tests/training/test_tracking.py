"""Experiment tracking (config `tracking`): a real tiny pretraining and a real tiny PPO run
report to TensorBoard, W&B (offline) and trackio, and what those wrote is read back with
their own readers: the loss of pretraining at its steps, every steps-table column of PPO at
the budget words, the run named by its id and carrying its config hash."""

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import tiny_jobs
from helpers import TEST_CONFIG, snakemake
from rl_toys import make_checkpoint
from storyrl.config import ConfigError, TrackingConfig
from storyrl.core.schemas import read_metadata
from storyrl.training.tracking import from_env, require


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt")


def numeric_columns(steps: pd.DataFrame) -> list[str]:
    """The steps-table columns with a number at every step (NaN columns are not logged)."""
    num = steps.select_dtypes("number")
    return [c for c in num.columns if num[c].notna().all()]


# --------------------------------------------------------------------------- TensorBoard
def tb_reader(folder: Path):
    from tbparse import SummaryReader

    assert folder.is_dir(), f"no event folder {folder}"
    return SummaryReader(str(folder))


def test_tensorboard_gets_the_pretraining_loss_words_and_config_hash(demo_prepared, tmp_path):
    tiny_jobs.pretrain(
        demo_prepared, tmp_path, {"backend": "tensorboard", "dir": str(tmp_path / "trk")}
    )
    log = pd.read_parquet(tmp_path / "out" / "log.parquet")
    reader = tb_reader(tmp_path / "trk" / "tensorboard" / "storyrl" / "pretrain" / "tiny")
    scalars = reader.scalars
    loss = scalars[scalars.tag == "train/loss"].sort_values("step")
    assert loss.step.tolist() == log.step.tolist() and len(loss) >= 5
    assert loss.value.to_numpy() == pytest.approx(log.loss.to_numpy(), rel=1e-5)
    words = scalars[scalars.tag == "train/words_seen"].sort_values("step")
    assert words.value.tolist() == pytest.approx(log.words_seen.tolist())
    text = reader.text.set_index("tag")["value"]
    assert (
        text["storyrl/config_hash"]
        == read_metadata(tmp_path / "out" / "log.parquet")["config_hash"]
    )
    assert text["storyrl/run_id"] == "tiny"


def test_tensorboard_gets_every_ppo_steps_column_at_the_budget_words(ckpt, tmp_path):
    tiny_jobs.rl(ckpt, tmp_path, {"backend": "tensorboard", "dir": str(tmp_path / "trk")})
    steps = pd.read_parquet(tmp_path / "run" / "steps.parquet")
    reader = tb_reader(tmp_path / "trk" / "tensorboard" / "storyrl" / "rl" / "toy")
    scalars = reader.scalars
    columns = numeric_columns(steps)
    assert {"teacher_score_mean", "kl", "kl_coef", "value_loss", "time_update_s"} <= set(columns)
    assert set(scalars.tag) == set(columns)
    for col in columns:
        logged = scalars[scalars.tag == col].sort_values("step")
        assert logged.step.tolist() == steps.budget_words.tolist(), col
        assert logged.value.to_numpy() == pytest.approx(
            steps[col].to_numpy(), rel=1e-5, abs=1e-9
        ), col
    text = reader.text.set_index("tag")["value"]
    assert (
        text["storyrl/config_hash"]
        == read_metadata(tmp_path / "run" / "steps.parquet")["config_hash"]
    )


def test_tensorboard_gets_grpo_metrics_through_the_trainers_report_to(ckpt, tmp_path):
    grpo = tiny_jobs.PPO.model_copy(
        update={"algorithm": "grpo", "max_steps": 3, "group": {"lr": 1e-3, "num_generations": 8}}
    )
    tiny_jobs.rl(ckpt, tmp_path, {"backend": "tensorboard", "dir": str(tmp_path / "trk")}, cfg=grpo)
    steps = pd.read_parquet(tmp_path / "run" / "steps.parquet")
    reader = tb_reader(tmp_path / "trk" / "tensorboard" / "storyrl" / "rl" / "toy")
    scalars = reader.scalars
    # TRL's own metrics at its steps: the loss (our policy_loss column) and the teacher's reward.
    loss = scalars[scalars.tag == "train/loss"].sort_values("step")
    assert loss.step.tolist() == [1, 2, 3]
    assert loss.value.to_numpy() == pytest.approx(steps.policy_loss.to_numpy(), rel=1e-5)
    reward = scalars[scalars.tag == "train/rewards/teacher/mean"].sort_values("step")
    assert reward.value.to_numpy() == pytest.approx(steps.reward_mean.to_numpy(), rel=1e-5)
    text = reader.text.set_index("tag")["value"]
    assert (
        text["storyrl/config_hash"]
        == read_metadata(tmp_path / "run" / "steps.parquet")["config_hash"]
    )


# --------------------------------------------------------------------------- W&B offline
def wandb_records(run_dir: Path):
    """The records of an offline run's .wandb file: W&B's protobuf Records in a LevelDB-style
    log (a 7-byte ':W&B' header, then 32 KiB blocks of chunks with a 7-byte header each), the
    format `wandb sync` reads. wandb 0.31 has no Python reader of it left (its core is in Go)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf, block = 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk  # FULL, FIRST / MIDDLE, LAST
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec


def wandb_run(root: Path) -> tuple[dict, dict, list[dict]]:
    """(the run record's fields, its config, its history rows) of the one offline run."""
    (run_dir,) = (root / "wandb").glob("offline-run-*")
    run, config, history = {}, {}, []
    for rec in wandb_records(run_dir):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run = {
                "name": rec.run.display_name,
                "project": rec.run.project,
                "group": rec.run.run_group,
            }
            config.update({u.key: json.loads(u.value_json) for u in rec.run.config.update})
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in rec.config.update})
        elif kind == "history":
            history.append(
                {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in rec.history.item
                }
            )
    return run, config, history


def test_wandb_offline_run_of_ppo_holds_every_steps_column(ckpt, tmp_path):
    # The tracking section's defaults: offline, so no account and no network are needed.
    tiny_jobs.rl(ckpt, tmp_path, {"backend": "wandb", "dir": str(tmp_path / "trk")})
    steps = pd.read_parquet(tmp_path / "run" / "steps.parquet")
    run, config, history = wandb_run(tmp_path / "trk")
    assert run == {"name": "toy", "project": "storyrl", "group": "rl"}
    assert (
        config["storyrl_config_hash"]
        == read_metadata(tmp_path / "run" / "steps.parquet")["config_hash"]
    )
    assert [h["budget_words"] for h in history] == steps.budget_words.tolist()
    for col in numeric_columns(steps):
        assert [h[col] for h in history] == pytest.approx(steps[col].tolist(), rel=1e-9), col


def test_wandb_offline_run_of_pretraining_holds_the_loss(demo_prepared, tmp_path):
    tiny_jobs.pretrain(
        demo_prepared,
        tmp_path,
        {"backend": "wandb", "dir": str(tmp_path / "trk"), "project": "babylm"},
    )
    log = pd.read_parquet(tmp_path / "out" / "log.parquet")
    run, config, history = wandb_run(tmp_path / "trk")
    assert run["name"] == "tiny" and run["project"] == "babylm"
    assert (
        config["storyrl_config_hash"]
        == read_metadata(tmp_path / "out" / "log.parquet")["config_hash"]
    )
    rows = [h for h in history if "train/loss" in h]
    assert [h["train/global_step"] for h in rows] == log.step.tolist()
    assert [h["train/loss"] for h in rows] == pytest.approx(log.loss.tolist(), rel=1e-6)
    assert [h["train/words_seen"] for h in rows] == log.words_seen.tolist()


# --------------------------------------------------------------------------- trackio
def trackio_logs(folder: Path, run: str) -> tuple[list, list[dict]]:
    """(the runs of project storyrl, the logged rows of `run`) from trackio's own storage, in a
    process of its own: trackio fixes its folder (TRACKIO_DIR) when imported."""
    code = (
        "import json; from trackio.sqlite_storage import SQLiteStorage as S; "
        f"print(json.dumps([S.get_runs('storyrl'), S.get_logs('storyrl', {run!r})]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**tiny_jobs._env({}), "TRACKIO_DIR": str(folder / "trackio")},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_trackio_local_database_holds_every_ppo_steps_column(ckpt, tmp_path):
    pytest.importorskip("trackio", reason="the `trackio` extra is not installed")
    tiny_jobs.rl(ckpt, tmp_path, {"backend": "trackio", "dir": str(tmp_path / "trk")})
    steps = pd.read_parquet(tmp_path / "run" / "steps.parquet")
    runs, logs = trackio_logs(tmp_path / "trk", "toy")
    assert runs == ["toy"]
    rows = [r for r in logs if "teacher_score_mean" in r]
    assert [r["step"] for r in rows] == steps.budget_words.tolist()
    for col in numeric_columns(steps):
        key = "__step" if col == "step" else col  # trackio keeps `step` for its own axis
        assert [r[key] for r in rows] == pytest.approx(steps[col].tolist(), rel=1e-9), col


def test_trackio_local_database_holds_the_pretraining_loss(demo_prepared, tmp_path):
    pytest.importorskip("trackio", reason="the `trackio` extra is not installed")
    tiny_jobs.pretrain(
        demo_prepared, tmp_path, {"backend": "trackio", "dir": str(tmp_path / "trk")}
    )
    log = pd.read_parquet(tmp_path / "out" / "log.parquet")
    runs, logs = trackio_logs(tmp_path / "trk", "tiny")
    assert runs == ["tiny"]
    rows = [r for r in logs if "train/loss" in r]
    # The Trainer's trackio integration logs the global step as a metric, not as trackio's step.
    assert [r["train/global_step"] for r in rows] == log.step.tolist()
    assert [r["train/loss"] for r in rows] == pytest.approx(log.loss.tolist(), rel=1e-6)


# --------------------------------------------------------------------------- the section
def test_a_bad_section_in_the_environment_names_the_variable_and_key():
    with pytest.raises(ConfigError, match=r"STORYRL_TRACKING: tracking.backend: Input should be"):
        from_env({"STORYRL_TRACKING": '{"backend": "mlflow"}'})
    with pytest.raises(ConfigError, match="STORYRL_TRACKING"):
        from_env({"STORYRL_TRACKING": "{not json"})
    # API keys come from the environment only: the section has no place for one.
    with pytest.raises(ConfigError, match="tracking.api_key: Extra inputs are not permitted"):
        from_env({"STORYRL_TRACKING": '{"backend": "wandb", "api_key": "secret"}'})
    assert from_env({}) == TrackingConfig() and TrackingConfig().wandb_mode == "offline"


def test_a_backend_that_is_not_installed_is_named_with_its_extra():
    try:
        import trackio  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'storyrl\[trackio\]'"):
            require(TrackingConfig(backend="trackio"))
    else:
        pytest.skip("trackio is installed here")


@pytest.mark.slow
def test_the_workflow_passes_tracking_to_the_job_and_a_change_reruns_nothing(tmp_path):
    """Tracking reaches the jobs through the environment, not params: the pretraining job
    writes its events and progress lines, and then another backend leaves nothing to do, where
    a changed training setting reruns pretraining."""
    target = "results/pretrain/demo/log.parquet"
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["pretrain"]["training"]["epochs"] = 0.3  # a short run is enough here
    cfg["pretrain"]["milestones"] = ["10K"]
    cfg["rl_runs"] = []  # their checkpoints are not milestones now; not needed here
    cfg["tracking"] = {"backend": "tensorboard", "progress_every_s": 1e-6}
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, target, "--cores", "1", "--configfile", str(base))
    events = tmp_path / "results" / "tracking" / "tensorboard" / "storyrl" / "pretrain" / "demo"
    assert "train/loss" in set(tb_reader(events).scalars.tag)
    job_log = (tmp_path / "results" / "logs" / "pretrain" / "demo.log").read_text()
    assert "\r" not in job_log and re.search(r"pretrain demo: step 1/\d+ .*ETA", job_log)

    def planned(config: dict) -> str:
        path = tmp_path / "changed.yaml"
        path.write_text(yaml.safe_dump(config))
        return snakemake(
            tmp_path, target, "-n", "--quiet", "rules", "--configfile", str(path)
        ).stdout

    assert "Nothing to be done" in planned({**cfg, "tracking": {"backend": "none"}})
    assert "Nothing to be done" in planned(
        {**cfg, "tracking": {"backend": "wandb", "progress_every_s": 600}}
    )
    changed = {
        **cfg,
        "pretrain": {**cfg["pretrain"], "training": {**cfg["pretrain"]["training"], "lr": 1e-3}},
    }
    assert re.search(r"^pretrain\s+1$", planned(changed), re.M)
