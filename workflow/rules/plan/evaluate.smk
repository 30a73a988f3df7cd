# The evaluate rules' plan (evaluate.smk): the models of each evaluation group, and the group rules'
# shapes and model lists.

EVAL_DATA = CFG.zero_shot.data_path or f"{RESULTS}/eval_data/demo"


def all_eval_outputs():
    return [str(layout.story_eval_path(RESULTS, m)) for m in MODELS] + [
        str(layout.eval_path(RESULTS, m)) for m in MODELS
    ]


def model_inputs(wildcards):
    return MODELS[wildcards.model_id].inputs


def words_arg(flag, words):
    return "" if words is None else f"{flag} {words}"


def model_args(wildcards):
    m = MODELS[wildcards.model_id]
    return " ".join(
        filter(None, [words_arg("--pretrain-words", m.pretrain_words), words_arg("--rl-words", m.rl_words)])
    )


def _eval_shapes():
    """{(suffix of the rule names, kind, labels) -> [group ids]}, kind 'pre' or 'rl'."""
    groups = {}
    for model_id, m in MODELS.items():
        groups.setdefault(("rl" if m.run_id else "pre", m.group), []).append(m.label)
    shapes = {}
    for (kind, group), labels in groups.items():
        shapes.setdefault((kind, tuple(labels)), []).append(group)
    out, seen = {}, {}
    # The most common shape of a kind gets the plain name, so the profile sizes it.
    for (kind, labels), members in sorted(shapes.items(), key=lambda kv: -len(kv[1])):
        seen[kind] = seen.get(kind, 0) + 1
        out[(f"{kind}{seen[kind] if seen[kind] > 1 else ''}", kind, labels)] = members
    return out


EVAL_SHAPES = _eval_shapes()


def group_models(kind, group):
    """The model ids of a group, in the order of MODELS."""
    return [mid for mid, m in MODELS.items() if m.group == group and bool(m.run_id) == (kind == "rl")]


def _group_inputs(kind):
    return lambda w: sorted({p for mid in group_models(kind, w.group) for p in MODELS[mid].inputs})


def _ids(model_id):
    m = MODELS[model_id]
    return {"model": m.path, "model_id": model_id, "pretrain_words": m.pretrain_words,
            "rl_words": m.rl_words}


def _story_list(kind):
    def models(w):
        return json.dumps([{**_ids(mid), "run_id": MODELS[mid].run_id,
                            "output": str(layout.story_eval_path(RESULTS, mid))}
                           for mid in group_models(kind, w.group)], separators=(",", ":"))

    return models


def _zero_shot_list(kind):
    def models(w):
        return json.dumps([{**_ids(mid), "variants": ["fast", "full"] if mid in FULL_SET_MODELS else ["fast"],
                            "parquet": str(layout.eval_path(RESULTS, mid)),
                            "output_dir": f"{RESULTS}/eval/official/{mid}"}
                           for mid in group_models(kind, w.group)], separators=(",", ":"))

    return models
