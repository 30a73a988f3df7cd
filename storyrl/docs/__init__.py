"""`storyrl docs`: the generated blocks of README and docs, read from a run's results."""
