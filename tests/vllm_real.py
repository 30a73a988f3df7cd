"""Our vLLM code against the real vllm 0.30.0 package, run by the interpreter of a venv that
has it (`make vllm-venv`; tests/stories/test_vllm_real.py starts this script and reads its report).
Imports vLLM with VLLM_TARGET_DEVICE=cpu: no GPU, no engine, no model weights; every check
calls vLLM's own classes and validation code. Prints one JSON object: check name -> "ok" or
the error."""

import os

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

import json  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

CHECKS = {}


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


def prompt_validator(max_model_len: int):
    """vLLM 0.30's own length check of the offline engine (InputProcessor._validate_prompt_len)
    on a text-only generating model of `max_model_len`."""
    from vllm.v1.engine.input_processor import InputProcessor

    proc = SimpleNamespace(
        skip_prompt_length_check=False,
        supports_mm_inputs=False,
        mm_encoder_cache_size=0,
        model_config=SimpleNamespace(max_model_len=max_model_len, runner_type="generate"),
    )
    return lambda n: InputProcessor._validate_prompt_len(proc, n, "decoder")


def words(conv) -> int:
    return len(conv[0]["content"].split())


def engine(max_model_len: int, calls: list):
    """A chat call refused as vLLM 0.30's engine refuses it: every conversation's prompt length
    (here its word count) through vLLM's check, the whole call raising at the first refusal."""
    validate = prompt_validator(max_model_len)

    def chat(convs):
        calls.append(len(convs))
        for conv in convs:
            validate(words(conv))
        return [f"reply to {words(c)}" for c in convs]

    return chat


@check
def refusal_is_caught():
    from vllm.exceptions import VLLMValidationError

    from storyrl.stories.teacher import vllm_backend

    assert not issubclass(VLLMValidationError, ValueError)  # why catching ValueError missed it
    convs = [[{"role": "user", "content": "w " * n}] for n in (5, 6, 50, 7, 8, 9, 10, 11)]
    calls = []
    got = vllm_backend.chat_each(engine(20, calls), convs)
    assert [r is None for r in got] == [i == 2 for i in range(8)], got
    assert got[0] == "reply to 5" and got[7] == "reply to 11"
    assert VLLMValidationError in vllm_backend.refusals()


@check
def exactly_max_model_len_is_not_sent():
    from vllm.exceptions import VLLMValidationError

    from storyrl.stories.teacher.vllm_backend import serve

    validate = prompt_validator(20)
    validate(19)
    try:
        validate(20)
        raise AssertionError("vLLM accepted a prompt of max_model_len tokens")
    except VLLMValidationError:
        pass
    convs = [[{"role": "user", "content": "w " * n}] for n in (5, 20, 19)]
    calls = []
    got = serve(engine(20, calls), convs, words, 20)
    assert calls == [2] and [r is None for r in got] == [False, True, False], (calls, got)


@check
def engine_args_take_ours():
    from vllm import EngineArgs

    from storyrl.config import TeacherConfig
    from storyrl.stories.teacher.vllm_backend import engine_kwargs

    cfg = TeacherConfig(backend="vllm", model="/models/teacher")
    args = EngineArgs(**engine_kwargs(cfg, 42))
    assert (args.model, args.dtype, args.max_model_len, args.seed) == (
        "/models/teacher",
        "bfloat16",
        1024,
        42,
    )
    assert args.gpu_memory_utilization == 0.25 and args.enable_prefix_caching is True
    gib = TeacherConfig(backend="vllm", model="/m", vllm={"gpu_memory_gib": 24})
    args = EngineArgs(**engine_kwargs(gib, 1, memory=(80 * 2**30, 79 * 2**30, "H100")))
    assert abs(args.gpu_memory_utilization - 0.3) < 1e-12


@check
def sampling_params_take_ours():
    from vllm import SamplingParams

    from storyrl.config import TeacherConfig
    from storyrl.stories.teacher.vllm_backend import sampling_kwargs

    sp = SamplingParams(**sampling_kwargs(TeacherConfig(backend="vllm"), 42))
    assert (sp.temperature, sp.max_tokens, sp.seed, sp.top_p) == (0.2, 6, 42, 1.0), sp


@check
def pack_server_argv_parses_and_schedules():
    from vllm import EngineArgs
    from vllm.config import SchedulerConfig
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from storyrl.config import RLSharingConfig, TeacherConfig
    from storyrl.rl.pack import server_argv

    teacher = TeacherConfig(backend="vllm", model="/models/teacher")
    argv = server_argv(RLSharingConfig(runs_per_gpu=4), teacher, 8123, 4 * 720)
    assert argv[:2] == ["vllm", "serve"], argv
    root = FlexibleArgumentParser(prog="vllm")
    serve_parser = ServeSubcommand().subparser_init(root.add_subparsers(dest="subparser"))
    serve_parser.set_defaults(dispatch_function=None)
    args = root.parse_args(argv[1:])
    assert args.model_tag == "/models/teacher" and args.port == 8123, args
    assert args.generation_config == "vllm" and args.enable_prefix_caching is True
    engine = EngineArgs.from_cli_args(args)
    assert (engine.max_num_seqs, engine.max_model_len, engine.dtype) == (2880, 1024, "bfloat16")

    def schedule(batched):
        return SchedulerConfig(
            max_num_seqs=engine.max_num_seqs,
            max_num_batched_tokens=batched,
            max_model_len=engine.max_model_len,
            is_encoder_decoder=False,
            enable_chunked_prefill=True,
        )

    # vLLM's scheduler takes the pack's settings (unset: vLLM's default on most GPUs, 2048)
    schedule(engine.max_num_batched_tokens or 2048)
    try:  # vLLM's default on most GPUs (2048): the scheduler refuses 2,880 sequences
        schedule(2048)
        raise AssertionError("vLLM's scheduler accepted fewer batched tokens than sequences")
    except ValueError as err:
        assert "must be greater than or equal to max_num_seqs" in str(err), err


@check
def openai_request_is_a_vllm_chat_request():
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    from chat_server import ChatServer
    from storyrl.config import TeacherConfig
    from storyrl.stories.teacher import make_teacher

    srv = ChatServer()
    try:
        cfg = TeacherConfig(backend="openai", model="teacher-x", openai={"base_url": srv.url})
        make_teacher(cfg, seed=42).score(["Once upon a time,"], [" a fox ran."])
    finally:
        srv.close()
    body = srv.requests[0]["body"]
    req = ChatCompletionRequest.model_validate(body)
    assert (req.model, req.temperature, req.top_p, req.max_tokens, req.seed) == (
        "teacher-x",
        0.2,
        1.0,
        6,
        42,
    ), req
    sp = req.to_sampling_params(max_tokens=6, default_sampling_params={})
    assert (sp.temperature, sp.top_p, sp.max_tokens, sp.seed) == (0.2, 1.0, 6, 42), sp


@check
def context_length_400_is_vllms():
    from vllm.entrypoints.serve.exception_handling.error_response import create_error_response
    from vllm.exceptions import VLLMValidationError
    from vllm.renderers.params import TokenizeParams

    from chat_server import context_length_body

    params = TokenizeParams(max_total_tokens=1024, max_output_tokens=6)
    try:
        params._token_len_check(None, list(range(1500)))
        raise AssertionError("vLLM accepted 1500 tokens")
    except VLLMValidationError as err:
        real = create_error_response(err).model_dump()
    assert real == json.loads(context_length_body(1500, 1024, 6)), real


def main() -> None:
    report = {}
    for name, fn in CHECKS.items():
        try:
            fn()
            report[name] = "ok"
        except Exception:
            report[name] = traceback.format_exc(limit=6)
    import vllm

    report["vllm_version"] = vllm.__version__
    print("VLLM_REAL_REPORT " + json.dumps(report))  # vLLM logs to stdout too


if __name__ == "__main__":
    main()
