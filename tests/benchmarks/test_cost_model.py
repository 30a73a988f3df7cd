"""benchmarks/cost_model.py: RL steps from the project's ledger, and GPU-hours as the measured
throughput divides the work."""

import json
import subprocess
import sys
from argparse import Namespace
from collections import Counter
from pathlib import Path

import cost_model
import pytest

from storyrl.config import load

ROOT = Path(__file__).resolve().parents[2]

CHECK = {
    "pretrain": {"tokens_per_s_median": 100_000},
    "ppo_fp32": {"ok": True, "sample_s": 1.0, "teacher_s": 4.0, "update_s": 3.0},
    "story_eval": {"seconds": 50.0, "stories": 1000},
}


@pytest.fixture(scope="module")
def paper():
    from helpers import paper_weights  # noqa: PLC0415  (the tests' own helper)

    return load(
        ROOT / "config" / "paper.yaml", paper_weights(Path(__import__("tempfile").mkdtemp()))
    )


def assumptions(teacher_speedup: float, startup_s: float) -> Namespace:
    """cost_model's command-line assumptions, as the tests fix them."""
    return Namespace(
        corpus_words=100e6,
        tokens_per_word=1.5,
        reply_words=3,
        teacher_speedup=teacher_speedup,
        startup_s=startup_s,
        zero_shot_s=60.0,
        glue_s=600.0,
        precision="fp32",
    )


def test_paper_budget_is_920_steps_by_the_ledger(paper):
    assert cost_model.rl_steps(paper, reply_words=3) == 920
    assert cost_model.rl_steps(paper, reply_words=2) == (1_000_000 - 5_760) // 720


def test_hours_are_work_over_measured_throughput(paper):
    args = assumptions(teacher_speedup=2.0, startup_s=0.0)
    jobs = Counter(
        pretrain=1,
        rl=8,
        story_eval_pre=1,
        story_eval_rl=8,
        zero_shot_pre=1,
        zero_shot_rl=8,
        official_glue=0,
    )
    rows = {r["rule"]: r for r in cost_model.estimate(paper, jobs, CHECK, args, None)}
    assert rows["pretrain"]["seconds_per_job"] == pytest.approx(11 * 90e6 * 1.5 / 100_000)
    assert rows["rl"]["seconds_per_job"] == pytest.approx(920 * (1.0 + 4.0 / 2 + 3.0))
    assert rows["rl"]["gpu_hours"] == pytest.approx(8 * 920 * 6.0 / 3600)
    # 108 models (28 milestones, 8 runs x 10) in 9 jobs
    assert rows["story_eval"]["jobs"] == 9
    assert rows["story_eval"]["gpu_hours"] == pytest.approx(108 * 50 / 3600)
    assert "official_glue" not in rows
    bench = {"runs": [{"precision": "bf16", "median_s": 1.0}]}
    args.precision = "bf16"
    fast = {r["rule"]: r for r in cost_model.estimate(paper, jobs, CHECK, args, bench)}
    assert fast["rl"]["seconds_per_job"] == pytest.approx(920 * (1.0 + 2.0 + 1.0))


def test_evaluation_start_up_is_paid_per_job(paper):
    args = assumptions(teacher_speedup=1.0, startup_s=90.0)
    grouped = Counter(
        pretrain=1, rl=8, story_eval_pre=1, story_eval_rl=8, zero_shot_pre=1, zero_shot_rl=8
    )
    per_model = Counter(pretrain=1, rl=8, story_eval=108, zero_shot=108)
    g = {r["rule"]: r for r in cost_model.estimate(paper, grouped, CHECK, args, None)}
    m = {r["rule"]: r for r in cost_model.estimate(paper, per_model, CHECK, args, None)}
    assert g["story_eval"]["gpu_hours"] == pytest.approx((108 * 50 + 9 * 90) / 3600)
    assert m["story_eval"]["gpu_hours"] == pytest.approx(108 * (50 + 90) / 3600)
    assert g["zero_shot"]["gpu_hours"] == pytest.approx((108 * 60 + 9 * 90) / 3600)
    assert m["zero_shot"]["gpu_hours"] == pytest.approx(108 * (60 + 90) / 3600)
    assert "full on 9" in g["zero_shot"]["work"]


def test_rl_packs_cost_their_runs_one_after_another(paper):
    """With rl_sharing.runs_per_gpu: 4 the 8 runs are 2 pack jobs (rl_pack_1, rl_pack_2): the
    RL row counts them, not 0 `rl` jobs, and each pays 4 runs' steps and one start-up."""
    args = assumptions(teacher_speedup=1.0, startup_s=90.0)
    alone = Counter(
        pretrain=1, rl=8, story_eval_pre=1, story_eval_rl=8, zero_shot_pre=1, zero_shot_rl=8
    )
    packed = Counter(
        pretrain=1,
        rl_pack_1=1,
        rl_pack_2=1,
        story_eval_pre=1,
        story_eval_rl=8,
        zero_shot_pre=1,
        zero_shot_rl=8,
    )
    a = {r["rule"]: r for r in cost_model.estimate(paper, alone, CHECK, args, None)}["rl"]
    p = {r["rule"]: r for r in cost_model.estimate(paper, packed, CHECK, args, None)}["rl"]
    assert (a["jobs"], p["jobs"]) == (8, 2)
    assert p["seconds_per_job"] == pytest.approx(4 * 920 * 8.0 + 90)
    assert p["gpu_hours"] == pytest.approx(a["gpu_hours"] - 6 * 90 / 3600)


NEW_CHECK = {
    "pretrain": {"ok": True, "tokens_per_s_median": 100_000},
    "pretrain_fast": {"ok": True, "tokens_per_s_median": 400_000, "opts": ["x=1"]},
    "ppo_after": {
        "ok": True,
        "update_arithmetic": "bf16",
        "sample_s": 0.5,
        "teacher_s": 1.5,
        "update_s": 1.0,
    },
    "ppo_before": {"ok": True, "sample_s": 0.5, "teacher_s": 5.0, "update_s": 1.0},
    "story_eval": {"seconds": 50.0, "stories": 1000},
}


def test_the_gpu_checks_measured_step_is_priced_as_measured(paper):
    """The shared-prefix teacher's PPO step (ppo_after) and the fast pretraining run price the
    plan, with no assumed speed-up; --teacher-speedup stays a what-if."""
    args = assumptions(teacher_speedup=1.0, startup_s=0.0)
    args.precision = "bf16"
    jobs = Counter(pretrain=1, rl=8, story_eval_pre=1, story_eval_rl=8)
    rows = {r["rule"]: r for r in cost_model.estimate(paper, jobs, NEW_CHECK, args, None)}
    assert rows["rl"]["seconds_per_job"] == pytest.approx(920 * (0.5 + 1.5 + 1.0))
    assert "shared-prefix" in rows["rl"]["basis"] and "speedup" not in rows["rl"]["basis"]
    assert rows["pretrain"]["seconds_per_job"] == pytest.approx(11 * 90e6 * 1.5 / 400_000)
    args.pretrain_run = "base"
    base = {r["rule"]: r for r in cost_model.estimate(paper, jobs, NEW_CHECK, args, None)}
    assert base["pretrain"]["seconds_per_job"] == pytest.approx(11 * 90e6 * 1.5 / 100_000)


def test_default_check_is_the_newest_measured_json(tmp_path):
    from common import MEASURED, newest_check

    for n in (1, 2, 10):
        (tmp_path / f"gpu_check_h200_{n}.json").write_text("{}")
    assert newest_check(tmp_path).name == "gpu_check_h200_10.json"
    assert newest_check(tmp_path / "none") is None
    assert cost_model.build_parser().get_default("gpu_check") == newest_check(MEASURED)


def test_a_second_judge_is_priced_as_one_job_of_its_stories(tmp_path):
    from helpers import ROOT, paper_weights

    second = tmp_path / "second"
    second.mkdir()
    (second / "config.json").write_text('{"model_type": "qwen2"}')
    extra = tmp_path / "second.yaml"
    extra.write_text(f"agreement:\n  teachers:\n    second: {{model: {second}}}\n")
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "cost_model.py"),
            "--configfile",
            str(ROOT / "config" / "paper.yaml"),
            str(paper_weights(tmp_path)),
            str(extra),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r["rule"]: r for r in json.loads(out.stdout)["rules"]}
    judge = rows["teacher_agreement_gpu"]
    assert judge["jobs"] == 1 and judge["work"] == f"{8 * 360} stories"


def _lookup(data, path: str):
    """`a.b.c` in nested dicts; `runs[bf16].median_s` picks the run of that precision."""
    for part in path.split("."):
        if part.endswith("]"):
            name, pick = part[:-1].split("[")
            data = next(r for r in data[name] if r["precision"] == pick)
        else:
            data = data[part]
    return data


def test_every_figure_is_read_from_a_measured_json_or_labelled_assumed(paper):
    """The table over the committed GPU check: each row's measured figures exist at the keys it
    names in the file it names, a row with none says what it assumes, and the phases' floors
    are those of the work at the H200's peak (teacher ~0.7-0.8 s, pretraining 0.56 h at 40%)."""
    from common import MEASURED

    path = MEASURED / "gpu_check_h200_3.json"
    check = json.loads(path.read_text())
    args = assumptions(teacher_speedup=1.0, startup_s=90.0)
    args.tokens_per_word, args.zero_shot_s, args.precision = None, 120.0, "bf16"
    args.gpu_check = path
    jobs = Counter(
        pretrain=1, rl=8, story_eval_pre=1, story_eval_rl=8, zero_shot_pre=1, zero_shot_rl=8
    )
    rows = cost_model.estimate(paper, jobs, check, args, None)
    floors = cost_model.phases(paper, check, args)
    for r in rows + floors:
        for ref in r["measured"]:
            name, key = ref.split(":", 1)
            value = _lookup(json.loads((MEASURED / name).read_text()), key)
            assert isinstance(value, int | float | list) and value, ref
        assert r["measured"] or r["assumed"], r
    by = {r["rule"]: r for r in rows}
    assert by["zero_shot"]["measured"] == []
    assert any("120 s a model" in a for a in by["zero_shot"]["assumed"])
    assert all(any("90 s start-up" in a for a in by[k]["assumed"]) for k in ("rl", "story_eval"))
    # The markdown says "assumed" beside each assumed figure.
    table = cost_model.markdown(rows, floors)
    assert "assumed: 120 s a model" in table and "assumed: 90 s start-up" in table
    assert round(sum(r["gpu_hours"] for r in rows), 1) == 14.3
    ph = {r["phase"].split(",")[0]: r for r in floors}
    assert set(ph) == {"RL teacher", "RL sampling", "RL update", "pretraining"}
    assert 0.6 < ph["RL teacher"]["floor_s"] < 0.9
    assert ph["pretraining"]["floor_s"] / 3600 == pytest.approx(0.56, abs=0.01)
    for r in floors:
        assert 0 < r["floor_s"] < r["now_s"] and r["ratio"] == pytest.approx(
            r["now_s"] / r["floor_s"]
        )
