"""The RL algorithms a run can use (`rl.algorithm`), each behind one interface.

An algorithm gets the run's context, resumes from what the run folder holds, trains until the
budget (or `max_steps`) ends, recording each step through the context, and returns the final
policy; the run loop (storyrl.rl.train) does the rest. Each is imported only when chosen: TRL
is slow to import and PPO does not need it.
"""

from typing import Protocol

from storyrl.rl.run import RunContext


class Algorithm(Protocol):
    def __init__(self, ctx: RunContext) -> None: ...

    def run(self):
        """Train; return (policy LM, tokenizer) as they are at the end."""


def _ppo() -> type[Algorithm]:
    from storyrl.rl.ppo_loop import PPOLoop

    return PPOLoop


def _trl() -> type[Algorithm]:
    from storyrl.rl.trl_algos import TRLLoop

    return TRLLoop


ALGORITHMS = {"ppo": _ppo, "grpo": _trl, "rloo": _trl}
"""`rl.algorithm` -> a function returning its class (see storyrl.config.rl for what each is)."""


def algorithm(name: str) -> type[Algorithm]:
    if name not in ALGORITHMS:
        raise ValueError(f"rl.algorithm: '{name}' is not one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]()
