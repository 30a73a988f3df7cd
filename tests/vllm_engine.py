"""Our `vllm` teacher on the real vLLM 0.30 engine (PyPI's CPU build), run by the interpreter of
the vLLM venv (tests/stories/test_vllm_engine.py starts it and reads its report):

    python tests/vllm_engine.py WORK

WORK holds `teacher/` (a tiny Llama chat model: storyrl.testing.build_tiny_chat_model), `student/` (a tiny GPT-2)
and, once WORK/pack.done says 0, `pack/<run>/rollouts.parquet` (the runs of the pack test).
One engine serves the offline backend's checks; the commands `storyrl teacher score`, `storyrl eval stories` and
`storyrl teacher agree` run through storyrl's own command line (storyrl.cli.main) in this
process, each building its own engine as it does on a cluster; vLLM is imported once. Prints one
JSON object: check name -> "ok" or the error, and `seconds`: each check's wall time."""

import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"
CONTS = [" a fox ran home.", " it rained all day.", " she sang to the moon.", " the end."]
MAX_MODEL_LEN = 1024
# float32: the model is saved so; on a CPU vLLM sizes its KV cache by VLLM_CPU_KVCACHE_SPACE.
VLLM = {"dtype": "float32", "max_model_len": MAX_MODEL_LEN, "gpu_memory_utilization": 0.2}
JINJA = (
    "Rate the story below with three integers 0-3.\n"
    "Opening: [{{ story_prompt }}]\nStory: [{{ student_completion }}]\nScores ="
)
CHECKS = {}


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


def teacher_section(work: Path, **kw) -> dict:
    from storyrl.config import TeacherConfig

    cfg = {"backend": "vllm", "model": str(work / "teacher"), "vllm": VLLM, **kw}
    return TeacherConfig.model_validate(cfg).model_dump(mode="json")


def cli(*argv: str) -> list[dict]:
    """`storyrl ARGV...` in this process; the JSON lines it printed."""
    import contextlib
    import io

    from storyrl.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    assert not status, f"storyrl {argv[0]} {argv[1]}: exit status {status}\n{out.getvalue()}"
    return [json.loads(ln) for ln in out.getvalue().splitlines() if ln.startswith("{")]


class Engine:
    """The offline backend's one engine, built by make_teacher, shared by the checks."""

    teacher = None

    @classmethod
    def get(cls, work: Path):
        if cls.teacher is None:
            from storyrl.config import TeacherConfig
            from storyrl.stories.teacher import make_teacher

            cfg = TeacherConfig.model_validate(teacher_section(work, max_failure_share=1.0))
            cls.teacher = make_teacher(cfg, seed=0)
        return cls.teacher


def sized(backend, n: int) -> str:
    """A continuation whose conversation is exactly `n` tokens in the engine's chat template
    and tokenizer (the count our backend makes before sending)."""
    from storyrl.stories.teacher.vllm_backend import conversations

    def count(k: int) -> int:
        return backend._n_tokens(conversations(backend.rubric, [PROMPT], [" a" * k])[0])

    base = count(0)
    for k in range(max(0, n - base - 20), n - base + 20):
        if count(k) == n:
            return " a" * k
    raise AssertionError(f"no continuation of ' a' words makes a {n}-token conversation")


@check
def offline_engine_scores_and_seeded_replies_repeat(work: Path):
    from vllm import LLM

    t = Engine.get(work)
    assert isinstance(t.backend.llm, LLM), type(t.backend.llm)
    js = t.score([PROMPT] * 4, CONTS)
    assert len(js) == 4 and not any(j.failed_call for j in js), js
    assert all(j.reply for j in js), [j.reply for j in js]
    # A story past max_model_len is not sent; the others are answered as before (seeded).
    js5 = t.score([PROMPT] * 5, [*CONTS, " and then" * 2000])
    assert [j.failed_call for j in js5] == [False] * 4 + [True]
    assert [j.reply for j in js5[:4]] == [j.reply for j in js]


@check
def refusal_bisects_to_the_one_story(work: Path):
    from vllm.exceptions import VLLMValidationError

    from storyrl.stories.teacher.vllm_backend import chat_each, conversations

    b = Engine.get(work).backend
    conts = [*CONTS, " and then" * 600, " a cat slept."]
    convs = conversations(b.rubric, [PROMPT] * len(conts), conts)
    assert b._n_tokens(convs[4]) > MAX_MODEL_LEN
    try:
        b._chat(convs)
        raise AssertionError("the engine answered a batch with an over-long prompt")
    except VLLMValidationError:
        pass  # vLLM refuses the whole call: what chat_each splits
    got = chat_each(b._chat, convs)
    assert [r is None for r in got] == [i == 4 for i in range(len(conts))], got
    assert got[:4] + got[5:] == b._chat(convs[:4] + convs[5:])


@check
def exactly_max_model_len_is_refused_and_not_sent(work: Path):
    from vllm.exceptions import VLLMValidationError

    from storyrl.stories.teacher.vllm_backend import conversations

    b = Engine.get(work).backend
    at, below = sized(b, MAX_MODEL_LEN), sized(b, MAX_MODEL_LEN - 1)
    conv_at, conv_below = conversations(b.rubric, [PROMPT] * 2, [at, below])
    assert b._chat([conv_below])[0] is not None  # one token of room: vLLM answers
    try:
        b._chat([conv_at])
        raise AssertionError(f"vLLM answered a prompt of max_model_len={MAX_MODEL_LEN} tokens")
    except VLLMValidationError:
        pass
    calls, chat = [], b._chat
    b._chat = lambda convs: calls.append(len(convs)) or chat(convs)
    try:
        got = b.replies([PROMPT] * 3, [CONTS[0], at, below])
    finally:
        del b._chat
    assert calls == [2] and [r is None for r in got] == [False, True, False], (calls, got)


@check
def teacher_score_cli_jinja2_template_and_concat(work: Path):
    import pandas as pd
    from vllm import SamplingParams

    from storyrl.stories.rubric import load_rubric

    rubric = work / "rubric.j2"
    rubric.write_text(JINJA)
    stories = work / "stories.parquet"
    # No whitespace at the seam: `concat` shows "land,a fox", `seam` would show "land, a fox".
    prompts, conts = [PROMPT] * 3, ["a fox ran home.", "it rained.", "she sang."]
    pd.DataFrame({"prompt": prompts, "continuation": conts}).to_parquet(stories)
    teacher = teacher_section(work, template=str(rubric), join="concat", max_failure_share=1.0)
    section = {"teacher": teacher, "seed": 5, "batch_size": 8}
    out = work / "scored.parquet"
    cli("teacher", "score", "--stories", str(stories), "--output", str(out), "--section",
        json.dumps(section))  # fmt: skip
    got = pd.read_parquet(out)
    assert not got.failed_call.any() and got.teacher_reply.str.len().gt(0).all(), got
    # What the engine was asked: the Jinja2 rubric around prompt + continuation as they are.
    r = load_rubric(str(rubric), join="concat")
    msgs = [r.render(p, c) for p, c in zip(prompts, conts)]
    assert "Story: [" + PROMPT + "a fox ran home.]" in msgs[0], msgs[0]
    llm = Engine.get(work).backend.llm
    params = SamplingParams(temperature=0.2, max_tokens=6, seed=5)
    want = [o.outputs[0].text for o in llm.chat([[{"role": "user", "content": m}] for m in msgs],
                                                 params, use_tqdm=False)]  # fmt: skip
    assert got.teacher_reply.tolist() == want, (got.teacher_reply.tolist(), want)


@check
def eval_stories_cli_scores_with_the_engine(work: Path):
    import pandas as pd

    out = work / "eval" / "stories.parquet"
    rl = {"prompts": ["once upon a time"], "batch_size": 4, "sampling": {"max_new_tokens": 8}}
    summary = cli(
        "eval", "stories", "--model", str(work / "student"), "--output", str(out),
        "--section", json.dumps({"n_stories": 6, "batch_size": 3, "seed": 3, "device": "cpu"}),
        "--rl", json.dumps(rl),
        "--teacher", json.dumps(teacher_section(work, max_failure_share=1.0)),
        "--reward", "{}",
    )  # fmt: skip
    got = pd.read_parquet(out)
    assert len(got) == 6 and summary, (len(got), summary)
    assert got.teacher_reply.str.len().gt(0).all(), got.teacher_reply.tolist()


@check
def agreement_judge_on_vllm_rescores_the_pack_runs(work: Path):
    import pandas as pd

    from storyrl.core.schemas import read_metadata

    done, deadline = work / "pack.done", time.monotonic() + 1200
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(1)  # the pack runs beside this script
    assert done.exists() and done.read_text() == "0", "the pack did not finish"
    rollouts = sorted((work / "pack").glob("*/rollouts.parquet"))
    assert len(rollouts) == 2, rollouts
    outs = [str(work / "agreement" / f"{p.parent.name}.parquet") for p in rollouts]
    judge = teacher_section(work, max_failure_share=1.0)
    rows = cli(
        "teacher", "agree", "--name", "second", "--teacher", json.dumps(judge),
        "--sample", json.dumps({"stories_per_run": 20, "seed": 0}),
        "--rollouts", *map(str, rollouts), "--output", *outs,
    )  # fmt: skip
    # Two steps: tenths 0 and 5 of training, two stories from each.
    assert [r["stories"] for r in rows] == [4, 4], rows
    for src, out in zip(rollouts, outs):
        got = pd.read_parquet(out).merge(pd.read_parquet(src)[["step", "sample", "prompt"]])
        assert len(got) == 4, got
        # The pack's over-long opening fails here too, alone; every other story is answered.
        too_long = got.prompt.str.len() > 200
        assert (got.failed_call == too_long).all(), got[["prompt", "failed_call"]]
        assert got.teacher_reply[~too_long].str.len().gt(0).all(), got.teacher_reply
        assert read_metadata(out)["teacher_identity"]["backend"] == "vllm"


def main() -> None:
    work = Path(sys.argv[1])
    report, seconds = {}, {}
    for name, fn in CHECKS.items():
        t0 = time.perf_counter()
        try:
            fn(work)
            report[name] = "ok"
        except BaseException:  # SystemExit from the command line too
            report[name] = traceback.format_exc(limit=8)
        seconds[name] = round(time.perf_counter() - t0, 1)
    import vllm

    report.update(vllm_version=vllm.__version__, seconds=seconds)
    print("VLLM_ENGINE_REPORT " + json.dumps(report), flush=True)  # vLLM logs to stdout too


if __name__ == "__main__":  # vLLM's engine may spawn processes that import this module
    main()
