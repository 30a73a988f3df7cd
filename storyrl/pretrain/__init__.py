"""Pretraining: the training loop, its schedule of milestones, the export of checkpoints, its commands."""
