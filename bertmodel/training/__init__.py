"""Pretraining: the settings, the plan checked before a run, the run itself, its callbacks,
checkpoints, schedule, devices, FLOPs and plots."""
