"""Which token the GLUE classifier reads with `--take_final`, through the pipelines' own classifier
code on a tiny checkpoint as our hand-off gives it to them (`pipeline_checkpoint`): the authors'
copy (`eval/` of malihamza/babylm-interactive-learning at 4bfd376, what `official.finetune_path`
names in the paper config) reads each input's last non-pad token, so a short input scores the
same padded in a batch as alone; the official pipeline (babylm/evaluation-pipeline-2025) reads
position -1, a pad. Opt-in, as neither is installable: set STORYRL_AUTHORS_FINETUNE to the
authors' `eval/` folder and, for the contrast, STORYRL_BABYLM_PIPELINE to the official checkout;
STORYRL_BABYLM_PYTHON (default: this interpreter) runs them."""

import json
import os
import subprocess
import sys

import pytest

from evalfixtures import build_model
from storyrl.evaluate.official import pipeline_checkpoint

AUTHORS = os.environ.get("STORYRL_AUTHORS_FINETUNE")
OFFICIAL = os.environ.get("STORYRL_BABYLM_PIPELINE")
PYTHON = os.environ.get("STORYRL_BABYLM_PYTHON", sys.executable)

# Runs inside a pipeline checkout: its classifier, its collate function and the tokenizer call of
# its trainer (AutoProcessor; the official trainer also passes its default padding_side, right).
PROBE = """
import argparse, inspect, json, sys
import torch
from transformers import AutoProcessor
from evaluation_pipeline.finetune.classifier_model import ModelForSequenceClassification
from evaluation_pipeline.finetune.dataset import Dataset

model_path = sys.argv[1]
cfg = argparse.Namespace(
    model_name_or_path=model_path, revision_name=None, enc_dec=False, causal=False,
    take_final=True, classifier_layer_norm_eps=1e-5, classifier_dropout=0.1, num_labels=2,
)
torch.manual_seed(0)
model = ModelForSequenceClassification(cfg).eval()
trainer = open("evaluation_pipeline/finetune/trainer.py").read()
kw = {"padding_side": "right"} if "padding_side=self.args.padding_side" in trainer else {}
tok = AutoProcessor.from_pretrained(model_path, **kw)
pairs = [("the cat sleeps", "a dog runs"), ("the bird can fly", "the fox has fur and a tail too")]
batch = [(p, 0) for p in pairs]
with torch.no_grad():
    ids, mask, _ = Dataset.collate_function(tok, False, 64, batch)
    together = model(ids, mask)
    alone = [model(*Dataset.collate_function(tok, False, 64, [b])[:2])[0] for b in batch]
print(json.dumps({
    "mask": mask.tolist(),
    "together": together.tolist(),
    "alone": [a.tolist() for a in alone],
}))
"""

pytestmark = pytest.mark.slow


def probe(checkout, model, tmp_path) -> dict:
    linked = pipeline_checkpoint(model, tmp_path / "handoff")
    out = subprocess.run(
        [PYTHON, "-c", PROBE, str(linked)], cwd=checkout, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def model(tmp_path):
    build_model(tmp_path / "ckpt-900M")
    return tmp_path / "ckpt-900M"


def _short_input_is_right_padded(r):
    short, long = r["mask"]
    assert sum(short) < sum(long) and short[-1] == 0 and short[0] == 1


@pytest.mark.skipif(not AUTHORS, reason="set STORYRL_AUTHORS_FINETUNE to the authors' eval/ folder")
def test_the_authors_copy_reads_the_last_non_pad_token(model, tmp_path):
    r = probe(AUTHORS, model, tmp_path)
    _short_input_is_right_padded(r)
    for together, alone in zip(r["together"], r["alone"]):
        assert together == pytest.approx(alone, abs=1e-5)


@pytest.mark.skipif(not OFFICIAL, reason="set STORYRL_BABYLM_PIPELINE to the official checkout")
def test_the_official_pipeline_reads_a_pad_on_short_inputs(model, tmp_path):
    r = probe(OFFICIAL, model, tmp_path)
    _short_input_is_right_padded(r)
    short_together, long_together = r["together"]
    short_alone, long_alone = r["alone"]
    assert long_together == pytest.approx(long_alone, abs=1e-5)  # no pad: the last token
    assert short_together != pytest.approx(short_alone, abs=1e-3)  # the pad's encoding instead
