"""What the training stages share: the run's record (run_config.json) and lock, tracking, progress lines."""
