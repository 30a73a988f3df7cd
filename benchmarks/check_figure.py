"""The GPU check's figure: seconds of a PPO step split into sampling, teacher and update, before
(the teacher reads every prompt in full) and after (the shared prefix), with the teacher alone
on the same Llama-3-length prompts beside it.

    python benchmarks/check_figure.py benchmarks/measured/gpu_check_h200_2.json [OUT.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PARTS = (("sample_s", "sampling"), ("teacher_s", "teacher"), ("update_s", "update"))


def figure(data: dict, out: Path) -> Path | None:
    """Stacked bars per PPO phase that ran, and a bar pair for the teacher A/B; None when
    nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    order = {"ppo_before": 0, "ppo_after": 1}
    runs = sorted(
        (
            (k, v)
            for k, v in data.items()
            if k.startswith("ppo_") and isinstance(v, dict) and v.get("ok")
        ),
        key=lambda kv: order.get(kv[0], 2),
    )
    ab = data.get("teacher_ab") if (data.get("teacher_ab") or {}).get("ok") else None
    if not runs and not ab:
        return None
    sns.set_theme(style="whitegrid", context="paper")
    colors = sns.color_palette("deep", 3)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), width_ratios=[max(len(runs), 1), 1])
    ax = axes[0]
    for i, (_, run) in enumerate(runs):
        bottom = 0.0
        for c, (key, label) in zip(colors, PARTS):
            ax.bar(i, run[key], bottom=bottom, color=c, label=label if i == 0 else None)
            bottom += run[key]
        ax.text(i, bottom, f"{bottom:.2f} s", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(runs)), [n.removeprefix("ppo_").replace("_", "\n") for n, _ in runs])
    ax.set_ylabel("seconds per PPO step (median)")
    batch = runs[0][1].get("batch") if runs else None
    ax.set_title(f"PPO step at batch {batch}, split")
    if runs:
        ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    if ab:
        names = [n for n in ("full", "shared") if n in ab]
        vals = [ab[n]["seconds"] for n in names]
        ax.bar(names, vals, color=colors[1])
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.2f} s", ha="center", va="bottom", fontsize=8)
        pt = ab.get("prompt_tokens", {})
        ax.set_title(f"teacher, {ab['stories']} prompts (~{pt.get('mean', 0):.0f} tokens)")
        ax.set_ylabel("seconds")
    dev = (data.get("environment") or {}).get("device", "CPU")
    fig.suptitle(f"GPU check on {dev}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


if __name__ == "__main__":
    src = Path(sys.argv[1])
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else src.with_suffix(".png")
    print(figure(json.loads(src.read_text()), dst))
