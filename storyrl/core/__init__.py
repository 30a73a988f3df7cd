"""Bottom helpers: units, files, schemas, checkpoints, devices, the results' layout, BabyLM."""
