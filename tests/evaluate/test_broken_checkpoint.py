"""A broken checkpoint: a truncated model.safetensors is one line naming the
folder, and in a group evaluation job the other checkpoints' results survive, also Snakemake's
removal of a failed job's outputs: the rerun links them back instead of scoring them again."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evalfixtures import build_model
from helpers import ROOT
from rl_toys import make_checkpoint
from storyrl.cli import main
from storyrl.testing import rl_train_args

TASKS = ["blimp", "ewok"]


def truncate(folder: Path) -> Path:
    f = folder / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "evaluation_data"
    assert main(["demo-eval", "--out", str(out), "--n-full", "6", "--n-fast", "4"]) == 0
    return out


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def test_rl_train_names_the_truncated_checkpoint(tmp_path, capsys):
    ckpt = truncate(make_checkpoint(tmp_path / "ckpt"))
    capsys.readouterr()
    section = {"prompts": ["once upon a time"], "batch_size": 4, "max_steps": 1, "threads": 1}
    argv = rl_train_args(section, ckpt, tmp_path / "run", scorer="rl_toys:ShareScorer")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"storyrl: {ckpt}: cannot load the model")


def test_zero_shot_names_the_truncated_checkpoint(tmp_path, data, capsys):
    ckpt = tmp_path / "ckpt"
    build_model(ckpt)
    truncate(ckpt)
    argv = ["eval", "zero-shot-suite", "--model", str(ckpt), "--data-path", str(data)]
    assert main([*argv, "--tasks", *TASKS, "--device", "cpu"]) == 2
    assert one_line(capsys).startswith(f"storyrl: {ckpt}: cannot load the model")


SNAKEFILE = """
MODELS = {models!r}
rule all:
    input: [f"out/{{m}}.parquet" for m in MODELS]
rule group:
    output: [f"out/{{m}}.parquet" for m in MODELS]
    log: "group.log"
    params: models={entries!r}
    shell:
        "{python} -m storyrl.cli eval zero-shot-suite --models {{params.models:q}}"
        " --data-path {data} --tasks {tasks} --device cpu > {{log}} 2>&1"
"""


def test_one_broken_model_keeps_the_groups_results_through_snakemake(tmp_path, data):
    names = ["a", "b", "c"]
    for i, m in enumerate(names):
        build_model(tmp_path / "models" / m, seed=i)
    truncate(tmp_path / "models" / "b")
    entries = json.dumps(
        [
            {"model": str(tmp_path / "models" / m), "model_id": m, "parquet": f"out/{m}.parquet"}
            for m in names
        ]
    )
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            SNAKEFILE.format(
                models=names,
                entries=entries,
                python=sys.executable,
                data=data,
                tasks=" ".join(TASKS),
            )
        )
    )
    exe = str(Path(sys.executable).with_name("snakemake"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run():
        cmd = [exe, "--cores", "1", "--directory", str(tmp_path), "-s", str(tmp_path / "Snakefile")]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)

    first = run()
    assert first.returncode != 0
    log = (tmp_path / "group.log").read_text()
    assert "Traceback" not in log
    assert (
        log.strip()
        .splitlines()[-1]
        .startswith(f"storyrl: {tmp_path / 'models' / 'b'}: cannot load")
    )
    assert "1 of 3 checkpoints failed" in log
    # Snakemake removed the failed job's outputs; the finished two are kept beside them.
    kept = {m: (tmp_path / "out" / ".kept" / f"{m}.parquet") for m in ("a", "c")}
    assert all(p.exists() for p in kept.values())
    before = {m: p.read_bytes() for m, p in kept.items()}
    build_model(tmp_path / "models" / "b", seed=1)  # the checkpoint repaired
    second = run()
    assert second.returncode == 0, second.stderr[-3000:]
    log = (tmp_path / "group.log").read_text()
    assert log.count("kept files reused") == 2  # a and c are not scored again
    for m in ("a", "c"):
        assert (tmp_path / "out" / f"{m}.parquet").read_bytes() == before[m]
    assert (tmp_path / "out" / "b.parquet").exists()


def test_grouped_story_eval_scores_the_others_and_keeps_them(tmp_path, capsys):
    rl = {"prompts": ["once upon a time"], "batch_size": 4, "sampling": {"max_new_tokens": 8}}
    teacher = {"backend": "heuristic", "template": str(ROOT / "config/prompts/teacher_rubric.txt")}
    names = ["a", "b"]
    for i, m in enumerate(names):
        build_model(tmp_path / m, seed=i)
    truncate(tmp_path / "a")
    entries = [
        {
            "model": str(tmp_path / m),
            "model_id": m,
            "output": str(tmp_path / "out" / f"{m}.parquet"),
        }
        for m in names
    ]
    argv = ["eval", "stories", "--models", json.dumps(entries), "--rl", json.dumps(rl)]
    argv += ["--section", json.dumps({"n_stories": 4, "batch_size": 4, "threads": 1})]
    argv += ["--teacher", json.dumps(teacher), "--reward", "{}"]
    assert main(argv) == 2
    err = one_line(capsys)
    assert err.startswith(f"storyrl: {tmp_path / 'a'}: cannot load the model")
    assert err.endswith(
        "(1 of 2 checkpoints failed; the results of the other 1 are written, and kept for the rerun)"
    )
    assert (tmp_path / "out" / "b.parquet").exists()
    assert (tmp_path / "out" / ".kept" / "b.parquet").exists()
