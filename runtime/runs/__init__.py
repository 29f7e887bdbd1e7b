"""Running bots: hosted bots, run capabilities, the pipeline, the queue, polling, the run log."""
