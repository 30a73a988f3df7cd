"""PPO as the paper ran it: TRL 0.9.4's step-wise `PPOTrainer.step`, rewritten compactly.

Semantics kept from TRL 0.9.4 (checked against its source):
- policy = causal LM + a linear value head (dropout 0.1 before it) on the last hidden state;
  the reference is a frozen copy of the starting checkpoint;
- queries and responses are concatenated and right-padded; position t of the shifted sequence
  scores token t+1, and the response mask covers the response tokens only;
- per-token reward -beta * (logp - ref_logp) on every response token, plus the scalar score
  on the last response token; GAE over the whole row with values and rewards masked;
  advantages whitened over the whole batch (unbiased variance, eps 1e-8);
- every forward pass (old log-probs, reference, and the minibatch passes) runs in eval mode;
- clipped policy loss, clipped value loss 0.5 * max(...) times vf_coef; a minibatch whose mean
  ratio exceeds `ratio_threshold` has its loss zeroed but the optimizer still steps;
- the adaptive KL controller is updated once per batch with the mean per-sequence KL summed
  over response tokens and n_steps = batch size.

`PPOConfig.precision` bf16 (ours, not TRL's) runs only the GPT-2 trunk under bf16 autocast; see
`hidden_states` for what stays fp32.
"""

import contextlib
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from storyrl.config import PPOConfig


# --------------------------------------------------------------------------- masked statistics
def masked_mean(x: torch.Tensor, mask: torch.Tensor, axis=None) -> torch.Tensor:
    if axis is None:
        return (x * mask).sum() / mask.sum()
    return (x * mask).sum(axis) / mask.sum(axis)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    var = masked_mean((x - masked_mean(x, mask)) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n < 2:
            raise ValueError("masked_var needs at least two unmasked values")
        var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


# --------------------------------------------------------------------------- KL controller
class KLController:
    """Adaptive (Ziegler et al. 2019, TRL's rule) or fixed KL coefficient."""

    def __init__(self, init: float, target: float, horizon: float, adaptive: bool = True):
        self.value, self.target, self.horizon, self.adaptive = init, target, horizon, adaptive

    def update(self, current: float, n_steps: int) -> None:
        if not self.adaptive:
            return
        error = float(np.clip(current / self.target - 1, -0.2, 0.2))
        self.value *= 1 + error * n_steps / self.horizon

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


# --------------------------------------------------------------------------- rewards and GAE
def per_token_rewards(scores, logprobs, ref_logprobs, mask, kl_coef: float):
    """-kl_coef * (logp - ref_logp) everywhere, plus each row's score on its last response token.

    Returns (rewards, non_score_rewards, kls), all shaped like `logprobs`."""
    kls = logprobs - ref_logprobs
    non_score = -kl_coef * kls
    rewards = non_score.clone()
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, -1).max(dim=1).values
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards, non_score, kls


def gae(values, rewards, mask, gamma: float, lam: float, whiten_rewards: bool = False):
    """GAE over each row (TRL: values and rewards masked first). Returns (values, whitened
    advantages, returns), with returns = raw advantages + values."""
    values, rewards = values * mask, rewards * mask
    if whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    length = rewards.shape[-1]
    last = torch.zeros_like(rewards[:, 0])
    reversed_adv = []
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t < length - 1 else 0.0
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last = delta + gamma * lam * last
        reversed_adv.append(last)
    advantages = torch.stack(reversed_adv[::-1], dim=1)
    returns = advantages + values
    return values, masked_whiten(advantages, mask).detach(), returns


def ppo_losses(
    old_logprobs,
    values,
    logprobs,
    vpreds,
    mask,
    advantages,
    returns,
    cfg: PPOConfig,
    ratio_check: bool = True,
):
    """Clipped policy and value losses. Returns (policy loss, vf_coef * value loss, stats);
    both losses are zeroed when the mean ratio exceeds the threshold (stats['skipped'] = 1).
    `ratio_check=False`: never zeroed (a micro-batch: the caller checks the whole minibatch)."""
    vpred_clipped = torch.max(
        torch.min(vpreds, values + cfg.cliprange_value), values - cfg.cliprange_value
    )
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpred_clipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    ratio = torch.exp(logprobs - old_logprobs)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cfg.cliprange, 1.0 + cfg.cliprange)
    pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    avg_ratio = masked_mean(ratio, mask).item()
    skipped = ratio_check and avg_ratio > cfg.ratio_threshold
    if skipped:
        pg_loss, vf_loss = pg_loss * 0.0, vf_loss * 0.0
    with torch.no_grad():
        stats = {
            "policy_loss": pg_loss.item(),
            "value_loss": vf_loss.item(),
            "ratio": avg_ratio,
            "clipfrac": masked_mean((pg_losses2 > pg_losses).float(), mask).item(),
            "vf_clipfrac": masked_mean((vf_losses2 > vf_losses1).float(), mask).item(),
            "approxkl": (0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask)).item(),
            "policykl": masked_mean(old_logprobs - logprobs, mask).item(),
            "value_error": masked_mean((vpreds - returns) ** 2, mask).item(),
            "skipped": float(skipped),
        }
    return pg_loss, cfg.vf_coef * vf_loss, stats


# --------------------------------------------------------------------------- precision
def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The trunk's autocast dtype for a `PPOConfig.precision` on `device`; None = plain fp32."""
    if precision == "auto":
        # Native bf16 only: emulated bf16 (pre-Ampere GPUs) would be slower than fp32.
        native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else None
    return torch.bfloat16 if precision == "bf16" else None


@contextlib.contextmanager
def tf32_matmuls(device: torch.device, enabled: bool):
    """TF32 for the fp32 matmuls that remain (LM head, value head) on CUDA, restored afterwards
    so that code sharing the process (an in-process teacher) keeps its own setting."""
    if not (enabled and device.type == "cuda"):
        yield
        return
    # The boolean switch, not `fp32_precision = "tf32"`: torch 2.13 keeps its global getter
    # (`get_float32_matmul_precision`) consistent only for this one.
    matmul = torch.backends.cuda.matmul
    try:
        before = matmul.allow_tf32
    except RuntimeError:
        # Something in this process (the Trainer's `tf32`, a compiled graph) set the new API,
        # and torch >= 2.9 refuses to read the legacy switch after that: use the new one too.
        before = matmul.fp32_precision
        matmul.fp32_precision = "tf32"
        try:
            yield
        finally:
            matmul.fp32_precision = before
        return
    matmul.allow_tf32 = True
    try:
        yield
    finally:
        matmul.allow_tf32 = before


# --------------------------------------------------------------------------- the model
class PolicyWithValue(nn.Module):
    """A causal LM and a linear value head on its last hidden state (TRL's ValueHead)."""

    def __init__(self, lm: nn.Module, value_dropout: float = 0.1):
        super().__init__()
        self.lm = lm
        self.v_dropout = nn.Dropout(value_dropout)
        self.v_head = nn.Linear(lm.config.hidden_size, 1)

    def forward(self, input_ids, attention_mask, start: int = 0, amp: torch.dtype | None = None):
        """Logits and values at positions start .. L-2 (each predicts the next token); `amp`:
        the trunk's autocast dtype (None = fp32)."""
        h = hidden_states(self.lm, input_ids, attention_mask, start, amp)
        values = self.v_head(self.v_dropout(h)).squeeze(-1)
        return self.lm.get_output_embeddings()(h).float(), values.float()


def hidden_states(lm, input_ids, attention_mask, start: int = 0, amp: torch.dtype | None = None):
    """The trunk's last hidden state at positions start .. L-2, in fp32.

    With `amp` the trunk (embeddings, blocks, final layer norm) runs under autocast, and the LM
    head, value head and everything after them stay fp32: the logits feed the log-probs, the
    ratio and the KL directly, and the head is a small share of the FLOPs (vocab x width against
    12 x width^2 per layer and token)."""
    # Only positions from `start` on are ever scored (the prompt's are masked out), so the LM head
    # and the softmax run on those alone; the masked results are the same as TRL's.
    ctx = (
        torch.autocast(input_ids.device.type, dtype=amp)
        if amp is not None
        else contextlib.nullcontext()
    )
    with ctx:
        out = lm.base_model(input_ids=input_ids, attention_mask=attention_mask)
    return out.last_hidden_state[:, start:-1].float()


def lm_logits(lm, input_ids, attention_mask, start: int = 0, amp: torch.dtype | None = None):
    return lm.get_output_embeddings()(
        hidden_states(lm, input_ids, attention_mask, start, amp)
    ).float()


def pack(queries, responses, pad_id: int, device):
    """Right-padded query+response ids, attention mask, and the response mask (shifted: index t
    covers token t+1), as TRL's `prepare_model_inputs` + `batched_forward_pass` build them."""
    rows = [torch.cat([q, r]) for q, r in zip(queries, responses)]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width - 1))
    for j, (row, q, r) in enumerate(zip(rows, queries, responses)):
        ids[j, : len(row)] = row
        attn[j, : len(row)] = 1
        mask[j, len(q) - 1 : len(q) - 1 + len(r)] = 1
    return ids.to(device), attn.to(device), mask.to(device)


# --------------------------------------------------------------------------- the trainer
class PPOTrainer:
    """Holds the policy, the frozen reference, Adam and the KL controller; `step` is one batch."""

    def __init__(self, policy: PolicyWithValue, ref: nn.Module, cfg: PPOConfig, pad_id: int):
        self.policy, self.ref, self.cfg, self.pad_id = policy, ref, cfg, pad_id
        self.ref.eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
        self.kl_ctl = KLController(cfg.init_kl_coef, cfg.kl_target, cfg.kl_horizon, cfg.adaptive_kl)

    @property
    def device(self):
        return next(self.policy.parameters()).device

    @property
    def amp(self) -> torch.dtype | None:
        """The trunk's autocast dtype (None = fp32), resolved on the policy's current device."""
        return autocast_dtype(self.cfg.precision, self.device)

    def _forward(self, model, ids, attn, start: int, with_values: bool):
        """(full log-softmax, token log-probs, values) at shifted positions start .. L-2."""
        if with_values:
            logits, values = model(ids, attn, start, self.amp)
        else:
            logits, values = lm_logits(model, ids, attn, start, self.amp), None
        logp = F.log_softmax(logits, dim=-1)
        return logp, torch.gather(logp, 2, ids[:, start + 1 :].unsqueeze(-1)).squeeze(-1), values

    def step(self, queries: list, responses: list, scores: torch.Tensor):
        """One PPO step on a batch. Returns (stats dict, per-story dict of logprob_sum and kl)."""
        with tf32_matmuls(self.device, self.amp is not None):
            return self._step(queries, responses, scores)

    def _step(self, queries: list, responses: list, scores: torch.Tensor):
        cfg, bs = self.cfg, len(queries)
        ids, attn, mask = pack(queries, responses, self.pad_id, self.device)
        start = min(len(q) for q in queries) - 1  # the first scored (shifted) position
        mask = mask[:, start:]
        scores = scores.to(self.device, torch.float32)
        self.policy.eval()
        with torch.no_grad():
            _, old_logprobs, old_values = self._forward(self.policy, ids, attn, start, True)
            _, ref_logprobs, _ = self._forward(self.ref, ids, attn, start, False)
            kl_coef = self.kl_ctl.value
            rewards, non_score, kls = per_token_rewards(
                scores, old_logprobs, ref_logprobs, mask, kl_coef
            )
            values, advantages, returns = gae(
                old_values, rewards, mask, cfg.gamma, cfg.lam, cfg.whiten_rewards
            )

        mbs = cfg.mini_batch_size or bs
        mb_stats = []
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(bs)
            for first in range(0, bs, mbs):
                idx = order[first : first + mbs].to(self.device)
                st = self._minibatch(
                    idx, start, ids, attn, mask, old_logprobs, values, advantages, returns
                )
                if cfg.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                mb_stats.append(st)

        with torch.no_grad():
            kl_per_seq = (kls * mask).sum(1)
            mean_kl = kl_per_seq.mean().item()
            per_story = {
                "logprob_sum": (old_logprobs * mask).sum(1).cpu().numpy(),
                "kl": kl_per_seq.cpu().numpy(),
            }
            stats = {k: float(np.mean([s[k] for s in mb_stats])) for k in mb_stats[0]}
            stats["skipped_minibatches"] = float(sum(s["skipped"] for s in mb_stats))
            del stats["skipped"]
            stats.update(
                {
                    "kl": mean_kl,
                    "kl_coef": kl_coef,
                    "entropy": (-old_logprobs * mask).sum(1).mean().item(),
                    "non_score_reward": masked_mean(non_score, mask).item(),
                    "returns_mean": masked_mean(returns, mask).item(),
                    "value_mean": masked_mean(values, mask).item(),
                    "advantage_mean": masked_mean(advantages, mask).item(),
                }
            )
            ret_var = masked_var(returns, mask).item()
            stats["value_var_explained"] = (
                1 - stats["value_error"] / ret_var if ret_var > 0 else math.nan
            )
        self.kl_ctl.update(mean_kl, bs)
        return stats, per_story

    def _minibatch(self, idx, start, ids, attn, mask, old_logprobs, values, advantages, returns):
        """The gradient of one minibatch's loss, accumulated over micro-batches of
        `cfg.micro_batch` stories; returns the minibatch's stats.

        Every loss and statistic is a mean over the minibatch's response tokens, so a
        micro-batch's mean, scaled by its share of those tokens, sums to the minibatch's. The
        ratio check needs the minibatch's mean ratio, known after the last micro-batch: a skipped
        minibatch's gradient is multiplied by 0, as TRL's zeroed loss makes it (the optimizer
        still steps)."""
        cfg = self.cfg
        micro = cfg.micro_batch or len(idx)
        total = mask[idx].sum()
        st: dict[str, float] = {}
        for first in range(0, len(idx), micro):
            sub = idx[first : first + micro]
            m_attn, m_mask = attn[sub], mask[sub]
            # Trim padding columns that no row of this micro-batch uses.
            width = int(m_attn.sum(1).max())
            cols = width - 1 - start
            m_ids, m_attn, m_mask = ids[sub, :width], m_attn[:, :width], m_mask[:, :cols]
            self.policy.eval()  # TRL's batched_forward_pass runs eval(), even for the loss
            logp, logprobs, vpreds = self._forward(self.policy, m_ids, m_attn, start, True)
            pg_loss, vf_loss, part = ppo_losses(
                old_logprobs[sub, :cols],
                values[sub, :cols],
                logprobs,
                vpreds,
                m_mask,
                advantages[sub, :cols],
                returns[sub, :cols],
                cfg,
                ratio_check=False,
            )
            share = m_mask.sum() / total
            (share * (pg_loss + vf_loss)).backward()
            with torch.no_grad():
                part["policy_entropy"] = masked_mean(-(logp.exp() * logp).sum(-1), m_mask).item()
            w = share.item()
            for k, v in part.items():
                st[k] = st.get(k, 0.0) + w * v
        st["skipped"] = float(st["ratio"] > cfg.ratio_threshold)
        if st["skipped"]:
            st["policy_loss"] = st["value_loss"] = 0.0
            for p in self.policy.parameters():
                if p.grad is not None:
                    p.grad.mul_(0.0)
        return st

    def state_dict(self) -> dict:
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "kl_ctl": self.kl_ctl.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_ctl.load_state_dict(state["kl_ctl"])
