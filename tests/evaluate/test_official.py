"""Hand-off to the official BabyLM pipeline: its outputs parsed into eval_scores, the AoA
revision store, the config checks and the planned jobs. Output files are written here in the
pipeline's formats (finetune/run.py, reading/run.py, AoA_word/run.py); a run of the pipeline
itself is in test_official_pipeline.py, which needs a checkout."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from evalfixtures import build_model
from helpers import ROOT, TEST_CONFIG
from storyrl.config import ConfigError, OfficialConfig, load
from storyrl.core.babylm_spec import GLUE_TASKS, aoa_steps
from storyrl.evaluate.official import (
    OfficialError,
    aoa_command,
    glue_command,
    glue_result_path,
    parse_aoa,
    reading_report_path,
    revision_store,
)

CLI = [sys.executable, "-m", "storyrl.cli"]


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "pipeline" / "evaluation_pipeline").mkdir(parents=True)
    return tmp_path / "pipeline"


def test_glue_calls_follow_eval_finetuning_sh(checkout, tmp_path):
    cfg = OfficialConfig(path=str(checkout))

    def flags(task):
        cmd = glue_command(cfg, tmp_path / "ckpt-900M", task, tmp_path / "out")
        return {k: v for k, v in zip(cmd, cmd[1:]) if k.startswith("--")}, cmd

    boolq, _ = flags("boolq")
    assert (boolq["--batch_size"], boolq["--num_epochs"], boolq["--metric_for_valid"]) == (
        "16",
        "10",
        "accuracy",
    )
    assert boolq["--train_data"] == str(
        checkout / "evaluation_data/full_eval/glue_filtered/boolq.train.jsonl"
    )
    wsc, _ = flags("wsc")
    assert (wsc["--batch_size"], wsc["--num_epochs"]) == ("32", "30")
    assert flags("mrpc")[0]["--metric_for_valid"] == "f1"
    mnli, cmd = flags("mnli")
    assert mnli["--num_labels"] == "3" and cmd[
        cmd.index("--metrics") + 1 : cmd.index("--metric_for_valid")
    ] == ["accuracy"]
    # every path is absolute: the pipeline runs with the checkout as its working directory
    assert mnli["--model_name_or_path"].startswith("/") and mnli["--results_dir"].startswith("/")
    assert "--take_final" not in cmd  # as the official script: the classifier reads token 0
    last = OfficialConfig(path=str(checkout), take_final=True)
    assert glue_command(last, tmp_path / "m", "rte", tmp_path / "o")[-1] == "--take_final"


def test_the_paper_config_runs_glue_as_the_authors_did():
    """The authors' eval/eval_finetuning.sh passes --take_final to all 7 GLUE tasks."""
    paper = load(ROOT / "config" / "paper.yaml").official
    assert paper.take_final is True and set(paper.glue) == set(GLUE_TASKS)


# A stand-in for a pipeline's finetune/run.py: it records where and how it was called and writes
# a results.txt where the pipeline writes it. The pipeline is not what these tests check: the
# hand-off is (which checkout, which flags); the real classifiers are in test_glue_pooling.py.
RECORDING_RUN = """import json, os, pathlib, sys
args = sys.argv[1:]
def arg(k):
    return args[args.index(k) + 1]
model = pathlib.Path(arg("--model_name_or_path"))
out = pathlib.Path(arg("--results_dir")) / model.stem / "main" / "finetune" / arg("--task")
out.mkdir(parents=True, exist_ok=True)
(out / "results.txt").write_text("accuracy: 0.5\\n")
(out / "called.json").write_text(json.dumps({"cwd": os.getcwd(), "argv": args}))
"""


def recording_copy(folder):
    fin = folder / "evaluation_pipeline" / "finetune"
    fin.mkdir(parents=True)
    (fin.parent / "__init__.py").write_text("")
    (fin / "__init__.py").write_text("")
    (fin / "run.py").write_text(RECORDING_RUN)
    return folder


def test_glue_runs_in_the_finetuning_copy_and_aoa_in_the_official_checkout(tmp_path):
    """`finetune_path`: GLUE fine-tunes in that copy (the authors' pools the last non-pad
    token), with --take_final; AoA and reading stay in `path` (their copy has no AoA)."""
    official = recording_copy(tmp_path / "official")
    authors = recording_copy(tmp_path / "authors")
    build_model(tmp_path / "ckpt-900M")
    cfg = OfficialConfig(
        path=str(official),
        finetune_path=str(authors),
        python=sys.executable,
        data_path=str(tmp_path / "data"),
        take_final=True,
    )
    out = subprocess.run(
        CLI
        + ["eval", "official", "glue", "--section", cfg.model_dump_json()]
        + ["--model", str(tmp_path / "ckpt-900M"), "--task", "rte"]
        + ["--output-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = glue_result_path(tmp_path / "out", tmp_path / "ckpt-900M", "rte")
    called = json.loads(result.with_name("called.json").read_text())
    assert os.path.realpath(called["cwd"]) == os.path.realpath(authors)
    assert "--take_final" in called["argv"] and "--causal" not in called["argv"]
    # Without a copy named, GLUE runs in the official checkout, as before.
    assert OfficialConfig(path=str(official)).glue_checkout() == str(official)
    assert aoa_command(cfg, "storyrl/paper", tmp_path)[2] == "evaluation_pipeline.AoA_word.run"


def test_the_paper_config_fine_tunes_in_the_authors_copy(checkout, tmp_path):
    """The paper config names the authors' copy as a path for the user to set; with the
    hand-off on and the path still unset, loading names the key."""
    paper = load(ROOT / "config" / "paper.yaml")
    assert paper.official.finetune_path and "babylm-interactive-learning" in (
        paper.official.finetune_path
    )
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    cfg["official"]["path"] = str(checkout)
    f = tmp_path / "paper.yaml"
    f.write_text(yaml.safe_dump(cfg))
    with pytest.raises(
        ConfigError, match=r"official.*finetune_path: .*babylm-interactive-learning"
    ):
        load(f)
    cfg["official"]["finetune_path"] = str(recording_copy(tmp_path / "copy"))
    f.write_text(yaml.safe_dump(cfg))
    assert load(f).official.glue_checkout() == str(tmp_path / "copy")


def test_the_paper_config_runs_aoa_with_the_min_context_the_authors_got(checkout, tmp_path):
    """The authors' eval/eval_aoa.sh sets MIN_CONTEXT=20 but never passes it on, so the
    pipeline's own default of AoA_word/run.py applied: 0 (at bf55c11)."""
    paper = load(ROOT / "config" / "paper.yaml").official.model_copy(update={"path": str(checkout)})
    cmd = aoa_command(paper, "storyrl/paper", tmp_path)
    assert cmd[cmd.index("--min_context") + 1] == "0"


def test_the_pipeline_gets_a_linked_checkpoint_with_a_tokenizer_config_it_reads(tmp_path):
    """transformers 5 saves tokenizer_class TokenizersBackend, which the pipeline's pinned
    transformers 4.51 does not know; the pipeline gets links to the checkpoint's files with a
    rewritten tokenizer_config.json, and the checkpoint stays as it was."""
    from transformers import AutoTokenizer

    from storyrl.evaluate.official import pipeline_checkpoint

    model = tmp_path / "ckpt-1.2M"
    build_model(model)
    before = {f.name: f.read_bytes() for f in model.iterdir()}
    linked = pipeline_checkpoint(model, tmp_path / "out")
    pipeline_checkpoint(model, tmp_path / "out")  # a rerun
    assert linked == (tmp_path / "out" / "checkpoints" / "ckpt-1.2M").resolve()
    assert {f.name: f.read_bytes() for f in model.iterdir()} == before
    cfg = json.loads((linked / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and "backend" not in cfg
    assert cfg["model_input_names"] == ["input_ids", "attention_mask"]
    assert (linked / "model.safetensors").resolve() == (model / "model.safetensors").resolve()
    text = "the cat sleeps ."
    assert (
        AutoTokenizer.from_pretrained(linked)(text)["input_ids"]
        == AutoTokenizer.from_pretrained(model)(text)["input_ids"]
    )


def write_outputs(tmp_path, model, data):
    """results.txt per GLUE task and the reading report.txt, where the pipeline writes them."""
    glue = {
        "boolq": "accuracy: 0.625\nf1: 0.5\nmcc: 0.125",
        "rte": "accuracy: 0.5\nf1: 0.4\nmcc: 0.0",
        "mnli": "accuracy: 0.375",
    }
    for task, text in glue.items():
        path = glue_result_path(tmp_path / "glue" / task, model, task)
        path.parent.mkdir(parents=True)
        path.write_text(text)  # finetune/run.py writes no final newline
        valid = data / "full_eval" / "glue_filtered" / f"{task}.valid.jsonl"
        valid.parent.mkdir(parents=True, exist_ok=True)
        valid.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(4 + len(task))))
    report = reading_report_path(tmp_path / "reading", model)
    report.parent.mkdir(parents=True)
    report.write_text("EYE TRACKING SCORE: 1.25\nSELF-PACED READING SCORE: -0.50\n")


def collect(checkout, tmp_path, model, data, glue=("boolq", "rte", "mnli"), **kw):
    section = OfficialConfig(path=str(checkout), data_path=str(data), glue=list(glue))
    return subprocess.run(
        CLI
        + [
            "eval",
            "official",
            "collect",
            "--section",
            section.model_dump_json(),
            "--model",
            str(model),
            "--glue-dir",
            str(tmp_path / "glue"),
            "--reading-dir",
            str(tmp_path / "reading"),
            "--model-id",
            "run-rl-final",
            "--pretrain-words",
            "900M",
            "--parquet",
            str(tmp_path / "e.parquet"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        **kw,
    )


def test_collect_turns_official_outputs_into_eval_scores(checkout, tmp_path):
    # A folder name with a dot: the pipeline names its results folder after Path.stem ("final-1").
    model = tmp_path / "final-1.2M"
    model.mkdir()
    (model / "storyrl_rl.json").write_text(json.dumps({"rl_words": 1_000_000}))
    data = tmp_path / "evaluation_data"
    write_outputs(tmp_path, model, data)
    assert (tmp_path / "glue" / "boolq" / "final-1" / "main" / "finetune" / "boolq").is_dir()
    out = collect(checkout, tmp_path, model, data)
    assert out.returncode == 0, out.stderr
    df = pd.read_parquet(tmp_path / "e.parquet")
    assert set(df.model_id) == {"run-rl-final"}
    assert set(df.pretrain_words) == {900_000_000} and set(df.rl_words) == {1_000_000}
    head = df[(df.task == "glue") & (df.subtask == "")].iloc[0]
    assert head.metric == "accuracy" and head.value == pytest.approx((62.5 + 50 + 37.5) / 3)
    assert head.n_items == 9 + 7 + 8  # lines of the three valid files
    boolq = df[(df.task == "glue") & (df.subtask == "boolq")].set_index("metric").value
    assert boolq.to_dict() == pytest.approx({"accuracy": 62.5, "f1": 50.0, "mcc": 0.125})
    assert set(df[(df.task == "glue") & (df.subtask == "mnli")].metric) == {"accuracy"}
    reading = df[df.task.str.startswith("reading")].set_index("task").value
    assert reading.to_dict() == {"reading_eye_tracking": 1.25, "reading_self_paced": -0.5}
    assert set(df[df.task.str.startswith("reading")].metric) == {"delta_r2_pct"}


def test_unreadable_or_missing_output_names_the_file(checkout, tmp_path):
    model = tmp_path / "ckpt-900M"
    model.mkdir()
    data = tmp_path / "evaluation_data"
    write_outputs(tmp_path, model, data)
    bad = glue_result_path(tmp_path / "glue" / "rte", model, "rte")
    bad.write_text("accuracy: 0.5\nf1 = 0.4\n")
    out = collect(checkout, tmp_path, model, data)
    assert out.returncode == 2 and f"{bad}: line 2" in out.stderr
    out = collect(checkout, tmp_path, model, data, glue=("qqp",))
    assert out.returncode == 2 and "qqp/ckpt-900M/main/finetune/qqp/results.txt" in out.stderr
    assert not (tmp_path / "e.parquet").exists()


def test_aoa_revisions_load_each_milestone_offline(tmp_path):
    """The AoA part loads `storyrl/<run>` at revisions chck_<N>M; the store must give each
    revision its own checkpoint through transformers, offline."""
    folders = {}
    for i, rev in enumerate(["chck_1M", "chck_2M"]):
        folders[rev] = tmp_path / f"ckpt-{i + 1}M"
        build_model(folders[rev], seed=i)
    hub = tmp_path / "hub"
    revision_store(hub, "storyrl/demo", folders)
    revision_store(hub, "storyrl/demo", folders)  # idempotent: a rerun after a failure
    probe = (
        "import sys, torch\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "for rev, path in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    a = AutoModelForCausalLM.from_pretrained('storyrl/demo', revision=rev)\n"
        "    b = AutoModelForCausalLM.from_pretrained(path)\n"
        "    AutoTokenizer.from_pretrained('storyrl/demo', revision=rev)\n"
        "    assert torch.equal(a.transformer.wte.weight, b.transformer.wte.weight), rev\n"
        "try:\n    AutoModelForCausalLM.from_pretrained('storyrl/demo', revision='chck_3M')\n"
        "except OSError:\n    print('no chck_3M')\n"
    )
    args = [a for rev, f in folders.items() for a in (rev, str(f))]
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no chck_3M" in out.stdout
    with pytest.raises(OfficialError, match="not a checkpoint folder"):
        revision_store(hub, "storyrl/demo", {"chck_3M": tmp_path})


def test_aoa_output_missing_a_step_is_an_error(tmp_path):
    path = tmp_path / "surprisal.json"
    entries = [
        {
            "step": "chck_1M",
            "word_count": 10**6,
            "target_word": "dog",
            "context_id": 0,
            "context": "BOS_ONLY",
            "surprisal": 9.5,
        }
    ]
    path.write_text(json.dumps({"metadata": {}, "results": entries}))
    assert parse_aoa(path, ["chck_1M"]) == entries
    with pytest.raises(OfficialError, match="chck_2M"):
        parse_aoa(path, ["chck_1M", "chck_2M"])


def test_config_names_the_bad_key(checkout, tmp_path):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["official"] = {"path": str(tmp_path)}
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"official\.path: .*no evaluation_pipeline/"):
        load(f)
    cfg["official"] = {"path": str(checkout), "glue": ["boolq", "cola"]}
    f.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"official\.glue: .*cola"):
        load(f)
    cfg["official"] = {"path": str(checkout), "aoa": True}
    f.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"official\.aoa_track: .*chck_1M"):
        load(f)
    assert len(aoa_steps("strict-small")) == 19 and len(aoa_steps("non-strict-small")) == 28


def test_babylm_table_and_figure_take_the_official_rows(checkout, tmp_path, monkeypatch):
    """GLUE joins the accuracy tasks; the reading scores get their own panel (another unit)."""
    from storyrl.analysis import figures_eval, load, style, tables
    from storyrl.core.schemas import make_metadata, write_table
    from storyrl.evaluate.official import glue_rows, reading_rows

    cfg = OfficialConfig(path=str(checkout), data_path=str(tmp_path))
    paths = []
    for model_id, rl_words, acc in (
        ("p-pre-900M", 0, 0.5),
        ("900M-seed42-base-rl-final", 10**6, 0.6),
    ):
        base = dict(model_id=model_id, pretrain_words=900 * 10**6, rl_words=rl_words)
        rows = glue_rows(cfg, {"boolq": {"accuracy": acc}, "rte": {"accuracy": acc - 0.1}}, base)
        rows += reading_rows({"reading_eye_tracking": 1.0 + acc}, base)
        rows.append(
            dict(base, task="blimp", subtask="", metric="accuracy", value=70 + 10 * acc, n_items=10)
        )
        paths.append(tmp_path / f"{model_id}.official.parquet")
        write_table(paths[-1], "eval_scores", rows, make_metadata("eval_scores"))
    t = tables.babylm_table(load.load_eval(paths)).set_index("task_id")
    assert list(t.index) == ["blimp", "glue", "reading_eye_tracking"]
    assert (
        t.loc["glue", "metric"] == "accuracy"
        and t.loc["reading_eye_tracking", "metric"] == "delta_r2_pct"
    )
    assert t.loc["glue", "RL delta"] == pytest.approx(10.0)
    figs = []
    monkeypatch.setattr(style, "save", lambda fig, output: figs.append(fig))
    figures_eval.babylm(load.load_eval(paths), None, tmp_path / "babylm.pdf")
    panels = [
        (ax.get_ylabel(), [x.get_text() for x in ax.get_xticklabels()]) for ax in figs[0].axes
    ]
    assert panels == [("accuracy (%)", ["BLiMP", "GLUE"]), ("reading: ΔR² (%)", ["Eye tracking"])]


# --------------------------------------------------------------------------- the AoA score
def test_the_rl_policy_takes_the_revision_after_its_checkpoint():
    from storyrl.core.babylm_spec import TrackError, policy_steps

    before, slot = policy_steps("non-strict-small", 900 * 10**6, aoa_steps("non-strict-small"))
    assert len(before) == 27 and before[-1] == ("chck_900M", 900 * 10**6) and slot == "chck_1000M"
    assert policy_steps("strict-small", 90 * 10**6, aoa_steps("strict-small"))[1] == "chck_100M"
    with pytest.raises(TrackError, match="no revision after 900M.*non-strict-small"):
        policy_steps("strict-small", 900 * 10**6, aoa_steps("strict-small"))
    with pytest.raises(TrackError, match="95M is not one of the track's revisions"):
        policy_steps("non-strict-small", 95 * 10**6, aoa_steps("non-strict-small"))


def test_aoa_score_rows_give_the_babylm_table_its_rl_delta(tmp_path):
    from storyrl.analysis import load, tables
    from storyrl.core.schemas import make_metadata, write_table
    from storyrl.evaluate.aoa_score import parse_score, score_rows

    out = 'log line\nSTORYRL_AOA {"curve_fitness": 0.25, "p_value": 0.01, "n_words": 300}\n'
    assert parse_score(out, "x") == {"curve_fitness": 0.25, "p_value": 0.01, "n_words": 300}
    with pytest.raises(OfficialError, match="x: no AoA score"):
        parse_score("Traceback ...", "x")
    rows = score_rows({"curve_fitness": 0.25, "n_words": 300}, "paper-pre-900M", 900 * 10**6, 0)
    rows += score_rows(
        {"curve_fitness": 0.31, "n_words": 290}, "900M-seed42-base-rl-final", 900 * 10**6, 999_360
    )
    path = tmp_path / "900M-seed42-base-rl-aoa.official.parquet"
    write_table(path, "eval_scores", rows, make_metadata("eval_scores"))
    t = tables.babylm_table(load.load_eval([path])).set_index("task_id")
    assert (
        t.loc["aoa", "task"] == "AoA (official score, r; before RL: ours)"
        and t.loc["aoa", "metric"] == "pearson_r"
    )
    assert t.loc["aoa", "900M-pre"] == 0.25 and t.loc["aoa", "900M-RL"] == 0.31
    assert t.loc["aoa", "RL delta"] == pytest.approx(0.06)
    from storyrl.analysis import figures_eval

    pdf, png = figures_eval.babylm(load.load_eval([path]), None, tmp_path / "babylm")
    assert png.stat().st_size > 10_000


@pytest.mark.skipif(
    not os.environ.get("STORYRL_BABYLM_PIPELINE"),
    reason="set STORYRL_BABYLM_PIPELINE to a checkout of the official pipeline",
)
def test_the_aoa_score_is_the_pipelines_own(tmp_path):
    """The pipeline's AoAEvaluator (what calculate_results_from_pred.py prints as 'AoA') on a
    surprisal file: words learned in the children's order give r near 1, and the policy's
    revision (chck_1000M) is in the RL score only."""
    import numpy as np

    from storyrl.evaluate.aoa_score import score

    cfg = OfficialConfig(
        path=os.environ["STORYRL_BABYLM_PIPELINE"],
        python=os.environ.get("STORYRL_BABYLM_PYTHON", sys.executable),
        data_path=str(tmp_path),
    )
    words = [f"w{i}" for i in range(8)]
    ages = range(16, 31)
    (tmp_path / "full_eval" / "aoa").mkdir(parents=True)
    pd.DataFrame(
        [
            {"word": w, **{str(a): 1 / (1 + np.exp(-(a - 18 - 1.5 * i))) for a in ages}}
            for i, w in enumerate(words)
        ]
    ).to_csv(tmp_path / "full_eval" / "aoa" / "cdi_human.csv", index=False)
    steps = aoa_steps("non-strict-small")

    def surprisal(i, n):  # word i is learned around 10**(6.4 + 0.25 i) words
        return 18 - 12 / (1 + np.exp(-3 * (np.log10(n + 1) - 6.4 - 0.25 * i)))

    entries = [
        {
            "step": name,
            "target_word": w,
            "context_id": 0,
            "context": "a ",
            "surprisal": float(surprisal(i, n)),
        }
        for name, n in steps
        for i, w in enumerate(words)
    ]
    pre = score(cfg, entries, [s for s, n in steps if n <= 9 * 10**8], tmp_path / "pre.json")
    assert pre["n_words"] == len(words) and pre["curve_fitness"] > 0.95
    shuffled = [
        dict(e, surprisal=float(surprisal(7 - int(e["target_word"][1:]), dict(steps)[e["step"]])))
        for e in entries
    ]
    worse = score(cfg, shuffled, [s for s, _ in steps], tmp_path / "rl.json")
    assert worse["curve_fitness"] < -0.95  # learned in the reverse order
    kept = json.loads((tmp_path / "pre.json").read_text())["results"]
    assert {e["step"] for e in kept} == {s for s, n in steps if n <= 9 * 10**8}


def test_the_aoa_score_before_rl_is_labelled_ours(tmp_path, monkeypatch):
    """The authors scored AoA once, on the interaction-track model (revisions up to the RL
    policy); a separate before-RL AoA score (the pretraining checkpoint's revisions alone) is
    ours, and the table and the figure say so where the AoA row is."""
    from storyrl.analysis import figures_eval, load, style, tables
    from storyrl.core.schemas import make_metadata, write_table
    from storyrl.evaluate.aoa_score import score_rows

    rows = score_rows({"curve_fitness": 0.31, "n_words": 50}, "p-pre-900M", 900 * 10**6, 0)
    rows += score_rows(
        {"curve_fitness": 0.35, "n_words": 50}, "900M-seed42-base-rl-final", 900 * 10**6, 10**6
    )
    path = tmp_path / "aoa.parquet"
    write_table(path, "eval_scores", rows, make_metadata("eval_scores"))
    t = tables.babylm_table(load.load_eval([path])).set_index("task_id")
    assert "before RL: ours" in t.loc["aoa", "task"]
    figs = []
    monkeypatch.setattr(style, "save", lambda fig, output: figs.append(fig))
    figures_eval.babylm(load.load_eval([path]), None, tmp_path / "babylm.pdf")
    ticks = [x.get_text() for ax in figs[0].axes for x in ax.get_xticklabels()]
    assert any("before RL: ours" in x for x in ticks), ticks
