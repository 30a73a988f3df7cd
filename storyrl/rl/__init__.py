"""The RL stage: paper-faithful PPO, TRL's GRPO/RLOO, the word-budget ledger, the run loop."""

import storyrl.config  # noqa: F401  (import order: storyrl.config defines Section before RLConfig)
