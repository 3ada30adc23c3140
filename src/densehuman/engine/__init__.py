"""Training engine: schedules, checkpoints, the training loop and distributed set-up."""
