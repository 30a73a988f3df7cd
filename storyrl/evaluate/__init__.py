"""Evaluation: BabyLM zero-shot tasks with the official 2025 pipeline's semantics.

`tasks` (the registry as data), `scorer` (one batched log-prob scorer), `results` (official
numbers, report, predictions, tidy rows), `zero_shot` (entry points and CLI handlers).
"""
