"""BabyLM zero-shot evaluation: scores, official semantics and the official output files."""

import json

import pytest
import torch

from evalfixtures import (
    blimp_row,
    build_model,
    et_row,
    ewok_row,
    hand_logprob,
    write_evaluation_data,
    write_jsonl,
    wug_row,
)
from storyrl.config import ZeroShotConfig
from storyrl.evaluate.results import aggregate, report_text, spearman
from storyrl.evaluate.scorer import Scorer
from storyrl.evaluate.tasks import TASKS, read_items
from storyrl.evaluate.zero_shot import evaluate_task, run_zero_shot


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny.v2"  # results folder: "tiny"
    model, tok = build_model(folder)
    return folder, model, tok


@pytest.fixture(scope="module")
def scorer(ckpt):
    return Scorer(ckpt[0], device="cpu", batch_size=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_evaluation_data(tmp_path_factory.mktemp("evaldata") / "evaluation_data")


def test_two_pairs_match_a_plain_unbatched_forward(ckpt, scorer, tmp_path):
    _, model, tok = ckpt
    pairs = [
        ("the cat sleeps .", "the cat sleep ."),
        ("a dog runs and the dogs run .", "a dogs runs and the dog run ."),
    ]
    folder = tmp_path / "blimp_filtered"
    write_jsonl(folder / "x.jsonl", [blimp_row(g, b, "sv") for g, b in pairs])
    items = read_items(TASKS["blimp"], folder)
    seqs = [scorer.encode(t, c) for it in items for t, c in zip(it.texts, it.completions)]
    got = scorer.score(seqs)
    want = [hand_logprob(model, tok, s, s) for pair in pairs for s in pair]
    assert got == pytest.approx(want, abs=1e-4)
    assert len({round(v, 3) for v in want}) == 4  # four different numbers, not a degenerate case
    # Same numbers one at a time and with everything in one padded batch.
    for bs in (1, 64):
        other = Scorer(ckpt[0], device="cpu", batch_size=bs, model=model, tokenizer=tok)
        assert other.score(seqs) == pytest.approx(got, abs=1e-5)
    result = evaluate_task(scorer, TASKS["blimp"], folder)
    n_right = sum(want[2 * i] >= want[2 * i + 1] for i in range(2))
    assert result.average == pytest.approx(100.0 * n_right / 2)


def test_first_token_is_never_scored_without_bos(ckpt, scorer, tmp_path):
    _, model, tok = ckpt
    text = "the cats sleep ."
    enc = scorer.encode(text, text)
    assert enc.ids == tuple(tok(text)["input_ids"]) and enc.ids[0] != tok.bos_token_id
    assert enc.scored == (False,) + (True,) * (len(enc.ids) - 1)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([enc.ids])).logits[0], -1)
    by_hand = sum(logp[t - 1, enc.ids[t]].item() for t in range(1, len(enc.ids)))
    assert scorer.score([enc])[0] == pytest.approx(by_hand, abs=1e-4)
    # A one-token sentence has nothing scored at all.
    one = scorer.encode("a", "a")
    assert len(one.ids) == 1 and scorer.score([one]) == [0.0]

    # A tokenizer that adds <s>: the BOS is the context and every word token counts.
    folder = tmp_path / "with_bos"
    bmodel, btok = build_model(folder, bos=True)
    bscorer = Scorer(folder, device="cpu")
    benc = bscorer.encode(text, text)
    assert benc.ids[0] == btok.bos_token_id and benc.ids[1:] == enc.ids
    assert benc.scored == (False,) + (True,) * len(enc.ids)
    with torch.no_grad():
        blogp = torch.log_softmax(bmodel(torch.tensor([benc.ids])).logits[0], -1)
    want = sum(blogp[t - 1, benc.ids[t]].item() for t in range(1, len(benc.ids)))
    assert bscorer.score([benc])[0] == pytest.approx(want, abs=1e-4)


def test_only_the_completion_is_scored(ckpt, scorer):
    _, model, tok = ckpt
    ctx, target = "The fox has fur.", "The fox is soft."
    enc = scorer.encode(f"{ctx} {target}", " " + target)
    n_ctx = len(tok(ctx)["input_ids"])
    # Context tokens are not scored, the target's are (byte-level BPE keeps " The" whole).
    assert not any(enc.scored[:n_ctx]) and all(enc.scored[n_ctx:])
    got = scorer.score([enc])[0]
    assert got == pytest.approx(hand_logprob(model, tok, f"{ctx} {target}", " " + target), abs=1e-4)
    assert got > hand_logprob(model, tok, f"{ctx} {target}", f"{ctx} {target}")


def test_tie_counts_as_correct(scorer, tmp_path):
    folder = tmp_path / "blimp_filtered"
    write_jsonl(folder / "t.jsonl", [blimp_row("the cat sleeps .", "the cat sleeps .", "same")])
    result = evaluate_task(scorer, TASKS["blimp"], folder)
    assert result.average == 100.0
    assert result.predictions == {
        "same": {"predictions": [{"id": "same_0", "pred": "the cat sleeps ."}]}
    }


def test_entity_tracking_averages_numops_within_file_then_files(tmp_path):
    folder = tmp_path / "entity_tracking"
    write_jsonl(
        folder / "regular.jsonl",
        [
            et_row("Box 0 contains", [" a.", " b."], 1),
            et_row("Box 0 contains", [" a.", " b."], 1),
            et_row("Box 1 contains", [" a.", " b."], 2),
        ],
    )
    write_jsonl(folder / "ambiref.jsonl", [et_row("Box 2 contains", [" a.", " b."], 0)] * 4)
    items = read_items(TASKS["entity_tracking"], folder)
    # Right, wrong (regular, 1 op), right (regular, 2 ops); ambiref: one right of four.
    good, bad = [0.0, -1.0], [-1.0, 0.0]
    by_uid = {
        "regular_1_ops": [good, bad],
        "regular_2_ops": [good],
        "ambiref_0_ops": [good, bad, bad, bad],
    }
    scores = [by_uid[it.uid].pop(0) for it in items]
    result = aggregate(TASKS["entity_tracking"], items, scores)
    uids = result.sections["UID"]
    assert uids["regular_1_ops"] == 50.0 and uids["regular_2_ops"] == 100.0
    assert uids["regular"] == 75.0 and uids["ambiref"] == 25.0
    # Mean of the file means: not the pooled 4/7 nor the mean over the three groups.
    assert result.average == 50.0
    text = report_text(result)
    assert "### UID ACCURACY\n" in text and "regular: 75.00\n" in text
    assert text.endswith("### AVERAGE ACCURACY\n50.00\n\n")


def test_wug_spearman_of_candidate0_probability(ckpt, scorer, tmp_path):
    _, model, tok = ckpt
    # Hand case: P(candidate 0) ranks 1,2,3,4 against human ranks 1,3,2,4: rho = 1 - 6*2/60.
    folder = tmp_path / "wug_past_tense"
    write_jsonl(folder / "w.jsonl", [wug_row(["a", "b"], r) for r in (0.1, 0.6, 0.5, 0.9)])
    items = read_items(TASKS["wug_past"], folder)
    scores = [[-3.0, -1.0], [-2.0, -1.0], [-1.0, -1.0], [0.0, -1.0]]
    result = aggregate(TASKS["wug_past"], items, scores)
    assert result.average == pytest.approx(0.8)
    assert result.predictions["wug_past"]["predictions"][0] == {
        "id": "wug_past_0",
        "pred": "b",
        "prob": pytest.approx(1 / (1 + 2.718281828**2)),
    }
    assert report_text(result) == (
        "TEMPERATURE: 1.00\n\n### UID SPEARMAN'S RHO\navg: 0.80\n\n"
        "### AVERAGE SPEARMAN'S RHO\n0.80\n\n"
    )
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)  # tied ranks

    # With the model: rho between softmax P(candidate 0) from hand log-probs and the ratios.
    rows = [
        (["the wuggity .", "the wuggyness ."], 0.2),
        (["the blickity .", "the blick ."], 0.7),
        (["the dax .", "the daxness ."], 0.5),
        (["a wug .", "a wugness ."], 0.1),
    ]
    folder = tmp_path / "wug_adj_nominalization"
    write_jsonl(folder / "w.jsonl", [wug_row(c, r) for c, r in rows])
    probs = []
    for cands, _ in rows:
        lp = torch.tensor([hand_logprob(model, tok, c, c) for c in cands])
        probs.append(torch.softmax(lp, 0)[0].item())
    want = spearman(probs, [r for _, r in rows])
    assert evaluate_task(scorer, TASKS["wug_adj"], folder).average == pytest.approx(want)


def test_official_output_files(ckpt, tmp_path):
    from storyrl.cli import main

    folder, model, tok = ckpt
    data = tmp_path / "blimp_filtered"
    rows = [
        blimp_row("the cat sleeps .", "the cat sleep .", "sv", "morphology", "agreement"),
        blimp_row("the cats sleep .", "the cats sleeps .", "sv", "morphology", "agreement"),
        blimp_row("a dog runs .", "a dogs runs .", "det", "syntax_semantics", "det_noun"),
    ]
    write_jsonl(data / "one.jsonl", rows)
    assert (
        main(
            [
                "eval",
                "zero-shot",
                "--model",
                str(folder),
                "--task",
                "blimp",
                "--data-path",
                str(data),
                "--output-dir",
                str(tmp_path / "out"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = tmp_path / "out" / "tiny" / "main" / "zero_shot" / "causal" / "blimp" / "blimp_filtered"
    assert sorted(p.name for p in out.iterdir()) == [
        "best_temperature_report.txt",
        "predictions.json",
    ]
    right = [
        hand_logprob(model, tok, r["sentence_good"], r["sentence_good"])
        >= hand_logprob(model, tok, r["sentence_bad"], r["sentence_bad"])
        for r in rows
    ]
    sv, det = 50.0 * (right[0] + right[1]), 100.0 * right[2]
    expected = (
        "TEMPERATURE: 1.00\n\n"
        f"### FIELD ACCURACY\nmorphology: {sv:.2f}\nsyntax/semantics: {det:.2f}\n\n"
        f"### UID ACCURACY\nsv: {sv:.2f}\ndet: {det:.2f}\n\n"
        f"### LINGUISTICS_TERM ACCURACY\nagreement: {sv:.2f}\ndet_noun: {det:.2f}\n\n"
        f"### AVERAGE ACCURACY\n{(sv + det) / 2:.2f}\n\n"
    )
    assert (out / "best_temperature_report.txt").read_text() == expected
    pick = [r["sentence_good"] if ok else r["sentence_bad"] for r, ok in zip(rows, right)]
    assert (out / "predictions.json").read_text() == (
        '{"sv": {"predictions": '  # noqa: UP031 (a format string would double the JSON's braces)
        '[{"id": "sv_0", "pred": "%s"}, {"id": "sv_1", "pred": "%s"}]}, '
        '"det": {"predictions": [{"id": "det_0", "pred": "%s"}]}}' % tuple(pick)
    )


def test_suite_one_load_all_tasks_official_layout_and_parquet(ckpt, scorer, data, tmp_path):
    from storyrl.core.schemas import read_table

    folder = ckpt[0]
    for variant in ("full", "fast"):
        pq = tmp_path / f"{variant}.parquet"
        rows = run_zero_shot(
            folder,
            data,
            tmp_path / "out",
            ZeroShotConfig(variant=variant),
            parquet=pq,
            model_id="tiny",
            pretrain_words=1_000_000,
            rl_words=0,
            scorer=scorer,
        )
        table = read_table(pq, "eval_scores").to_pandas()
        assert len(table) == len(rows)
        heads = table[table.subtask == ""].set_index("task")
        suffix = "" if variant == "full" else "_fast"
        assert sorted(heads.index) == sorted(t + suffix for t in TASKS)
        assert heads.loc["wug_adj" + suffix, "metric"] == "spearman_rho"
        assert heads.loc["entity_tracking" + suffix, "n_items"] == 3
        # Each headline equals the single-task entry point on the same folder.
        for name, task in TASKS.items():
            sub = data / f"{variant}_eval" / task.dirs[variant]
            single = evaluate_task(scorer, task, sub)
            assert heads.loc[name + suffix, "value"] == pytest.approx(single.average, nan_ok=True)
            out = (
                tmp_path
                / "out"
                / "tiny"
                / "main"
                / "zero_shot"
                / "causal"
                / task.official
                / task.dirs[variant]
            )
            assert (out / "best_temperature_report.txt").read_text() == report_text(single)
            json.loads((out / "predictions.json").read_text())
    assert set(table.pretrain_words) == {1_000_000} and set(table.rl_words) == {0}

    from storyrl.cli import main

    pq = tmp_path / "cli.parquet"
    assert (
        main(
            [
                "eval",
                "zero-shot-suite",
                "--model",
                str(folder),
                "--data-path",
                str(data),
                "--variant",
                "fast",
                "--tasks",
                "blimp",
                "wug_past",
                "--parquet",
                str(pq),
                "--pretrain-words",
                "1M",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    cli = read_table(pq, "eval_scores").to_pandas()
    assert sorted(cli[cli.subtask == ""].task) == ["blimp_fast", "wug_past_fast"]
    assert set(cli.model_id) == {"tiny.v2"} and set(cli.pretrain_words) == {1_000_000}
    merged = cli.merge(table, on=["task", "subtask", "metric"], suffixes=("", "_api"))
    assert len(merged) == len(cli) and (merged.value - merged.value_api).abs().max() < 1e-9


def test_bf16_with_recheck_gives_the_fp32_choices(ckpt, data):
    folder, model, tok = ckpt
    fp32 = Scorer(folder, device="cpu", dtype="float32")
    bf16 = Scorer(folder, device="cpu", dtype="bfloat16")
    for name in ("blimp", "ewok", "entity_tracking", "comps"):
        sub = data / "full_eval" / TASKS[name].dirs["full"]
        want = evaluate_task(fp32, TASKS[name], sub)
        got = evaluate_task(bf16, TASKS[name], sub, recheck_margin=1e9)  # re-check everything
        assert got.sections == want.sections and got.predictions == want.predictions


def test_bad_input_names_the_file_and_field(tmp_path, scorer):
    folder = tmp_path / "ewok_filtered"
    write_jsonl(folder / "bad.jsonl", [ewok_row("A.", "B.", "C."), {"Context1": "A."}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: field 'Target1' missing"):
        read_items(TASKS["ewok"], folder)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_items(TASKS["ewok"], tmp_path / "nowhere")


def test_shared_prefix_scoring_equals_full_passes(ckpt):
    folder, model, tok = ckpt
    # Prefixes of different lengths in one batch: the cache is padded, positions continue.
    items = [
        (
            "Box 0 contains the apple, Box 1 contains the key. Box 0 contains",
            [" the apple.", " the key.", " nothing."],
        ),
        ("The fox has fur.", [" The fox is soft.", " The fox is wet."]),
        (
            "A robin is a bird. A bird can fly. The chef saw a wug and said that",
            [" the wug was wuggy.", " it flew.", " the wug was wuggy."],
        ),  # a repeated candidate
    ]
    groups_text = [[(p + o, o) for o in opts] for p, opts in items]
    want = [[hand_logprob(model, tok, t, c) for t, c in g] for g in groups_text]
    for bs in (1, 2, 64):
        shared = Scorer(
            folder, device="cpu", batch_size=bs, min_shared=1, model=model, tokenizer=tok
        )
        groups = [shared.encode_all(g) for g in groups_text]
        assert all(len(set(g)) > 1 for g in groups)
        got = shared.score_groups(groups)
        for g, w in zip(got, want):
            assert g == pytest.approx(w, abs=1e-4)
        assert got[2][0] == got[2][2]  # identical candidates: exactly the same score
    plain = Scorer(folder, device="cpu", share_prefix=False, model=model, tokenizer=tok)
    flat = plain.score([e for g in groups for e in g])
    assert flat == pytest.approx([v for g in got for v in g], abs=1e-5)


def test_too_long_items_lose_their_earliest_context_tokens(ckpt, caplog):
    # As lm-evaluation-harness: keep the last max_len tokens; the completion is scored whole.
    _, model, tok = ckpt
    short = Scorer(ckpt[0], device="cpu", model=model, tokenizer=tok)
    short.max_len = 8
    context, completion = "the cat and the dog and the bird sleep .", "the bird sleep ."
    text = context
    ids = tok(text)["input_ids"]
    assert len(ids) > 8
    enc = short.encode(text, completion)
    assert enc.ids == tuple(ids[-8:]) and enc.scored[0] is False
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids[-8:]])).logits[0].double(), -1)
    want = sum(logp[t - 1, enc.ids[t]].item() for t in range(1, 8) if enc.scored[t])
    full = Scorer(ckpt[0], device="cpu", model=model, tokenizer=tok).encode(text, completion)
    assert 0 < sum(enc.scored) == sum(full.scored)  # every completion token is still scored
    assert short.score([enc])[0] == pytest.approx(want, abs=1e-4)
    assert "earliest tokens were dropped" in caplog.text
    with pytest.raises(ValueError, match="completion alone is longer"):
        short.encode(text, text)
