"""The RL stage: paper-faithful PPO, TRL's GRPO/RLOO, the word-budget ledger, the run loop."""
