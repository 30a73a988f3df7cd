"""Helpers the tests share (conftest.py holds fixtures only): the repo's paths, a Snakemake
runner and a dry run's jobs per rule, and the paper config's local-weights override."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "tests" / "config" / "test.yaml"


def vllm_python() -> tuple[str, str | None]:
    """The interpreter of the venv with the real vLLM engine (`make vllm-venv`: .venv-vllm, or
    STORYRL_VLLM_PYTHON), and why it is missing (None: it is there). Under STORYRL_REQUIRE_VLLM=1
    (.ci/run) a missing one is an error, not a reason to skip."""
    python = os.environ.get("STORYRL_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
    missing = None if Path(python).exists() else f"no vLLM venv at {python}: `make vllm-venv`"
    if missing and os.environ.get("STORYRL_REQUIRE_VLLM") == "1":
        raise RuntimeError(f"STORYRL_REQUIRE_VLLM=1 but {missing}")
    return python, missing


def pretrain_args(job, prepared: Path, work: Path, out: Path) -> list[str]:
    """`-m storyrl.cli pretrain ...` for `job` on a prepared corpus (tokens.bin, tokens.json,
    tokenizer/ in `prepared`); the caller puts the interpreter or launcher in front."""
    return [
        "-m",
        "storyrl.cli",
        "pretrain",
        "--section",
        job.model_dump_json(),
        "--tokens",
        str(prepared / "tokens.bin"),
        "--tokens-meta",
        str(prepared / "tokens.json"),
        "--tokenizer",
        str(prepared / "tokenizer"),
        "--work-dir",
        str(work),
        "--checkpoint-dir",
        str(out),
        "--log-parquet",
        str(out / "log.parquet"),
    ]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the repo's Snakefile in `workdir` (so results/ lands there) with the test config."""
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    if "--configfile" not in args:
        cmd += ["--configfile", str(TEST_CONFIG)]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and out.returncode:
        raise AssertionError(
            f"snakemake failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        )
    return out


def job_counts(work: Path, *configfiles: Path, targets=()) -> dict[str, int]:
    """Jobs per rule that a dry run would run ({} if nothing is to be done)."""
    args = [*targets, "-n", "--quiet", "rules"]
    if configfiles:
        args += ["--configfile", *map(str, configfiles)]
    lines = snakemake(work, *args).stdout.splitlines()
    if not any(l.split() == ["job", "count"] for l in lines):
        return {}  # "Nothing to be done"
    start = next(i for i, l in enumerate(lines) if l.split() == ["job", "count"]) + 2
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("total"))
    return {l.split()[0]: int(l.split()[1]) for l in lines[start:end]}


# The shape of the authors' rubric (prompts/teacher_prompt.md at 4bfd376), in our own words: the
# opening in backticks, the story in quotes and backticks, an answer-format line, and the last
# line `Readability, Narrative, Creativity =`.
AUTHORS_SHAPE = (
    "Grade a child's story kindly, three scores from 0 to 3.\n"
    'If the story is empty (""), answer 0 0 0!\n\n'
    "Answer in the format:\nReadability, Narrative, Creativity = _ _ _\n\n"
    "Opening:\n`{{story_prompt}}`\n\n"
    'Story:\n"`{{student_completion}}`"\n\n'
    "Readability, Narrative, Creativity =\n"
)


def paper_weights(workdir: Path) -> Path:
    """A config file to pass after config/paper.yaml that points its teacher at a local model
    folder in `workdir` (planning reads only its config.json) and at a rubric of the authors'
    shape, its corpus at a saved dataset's folder and its evaluation data at the task folders:
    the paper's dry runs need them all (planning reads only their names and JSON headers)."""
    import hashlib
    import json

    import yaml

    from storyrl.core.babylm_spec import ZERO_SHOT_DIRS, ZERO_SHOT_VARIANTS

    folder = workdir / "weights" / "Llama-3.1-8B-Instruct"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    rubric = workdir / "weights" / "teacher_prompt.md"
    rubric.write_text(AUTHORS_SHAPE)
    # Not the authors' file: its own hash stands in for theirs.
    sha = hashlib.sha256(rubric.read_bytes()).hexdigest()
    override = workdir / "paper_weights.yaml"
    teacher = {"model": str(folder), "template": str(rubric), "template_sha256": sha}
    corpus = workdir / "data" / "babylm-100M"
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
    evaluation = workdir / "data" / "evaluation_data"
    for task in ZERO_SHOT_DIRS.values():
        for variant, name in ZERO_SHOT_VARIANTS.items():
            (evaluation / name / task[variant]).mkdir(parents=True, exist_ok=True)
    override.write_text(
        yaml.safe_dump(
            {
                "teacher": teacher,
                "corpora": {"babylm": {"path": str(corpus)}},
                "zero_shot": {"data_path": str(evaluation)},
            }
        )
    )
    return override


def assert_dataset_matches_parquet(folder: Path, work: Path) -> dict[str, int]:
    """Every config of a `storyrl share` folder's card, loaded with `datasets` as a reader of
    the Hub would (in a process with the hub offline and an empty HF_HOME), holds the rows of its
    Parquet files. Returns {config: rows}."""
    import pandas as pd
    import pyarrow.parquet as pq
    import yaml

    head = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    names = [c["config_name"] for c in head["configs"]]
    code = (
        "import sys, datasets\n"
        "for name in sys.argv[2:]:\n"
        "    ds = datasets.load_dataset(sys.argv[1], name, split='train')\n"
        "    ds.to_parquet(f'{sys.argv[1]}.{name}.loaded.parquet')\n"
    )
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(work / "hf"))
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder), *names], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {}
    for c in head["configs"]:
        (files,) = c["data_files"]
        got = pd.read_parquet(f"{folder}.{c['config_name']}.loaded.parquet")
        Path(f"{folder}.{c['config_name']}.loaded.parquet").unlink()
        want = pd.concat(
            [pq.read_table(p).to_pandas() for p in sorted(folder.glob(files["path"]))],
            ignore_index=True,
        )
        assert len(want) > 0, c
        key = list(want.columns)
        got = got[key].sort_values(key).reset_index(drop=True)
        want = want.sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)
        rows[c["config_name"]] = len(want)
    return rows


def pipeline_checkouts(workdir: Path) -> dict:
    """`official` keys naming an official checkout and a fine-tuning copy (folders only: planning
    checks their layout), as the paper config needs once the hand-off is on."""
    checkout = workdir / "evaluation-pipeline-2025"
    (checkout / "evaluation_pipeline").mkdir(parents=True, exist_ok=True)
    copy = workdir / "babylm-interactive-learning" / "eval"
    (copy / "evaluation_pipeline" / "finetune").mkdir(parents=True, exist_ok=True)
    return {"path": str(checkout), "finetune_path": str(copy)}
