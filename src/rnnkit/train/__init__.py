"""The run machinery every task trains with: the loop, its config and schedule, checkpoints,
the run directory and its log, batches, distributed setup, seeding, interrupts, and the
command-line side of a run."""
