"""Training a model: the loop (:mod:`.trainer`), dev and test evaluation (:mod:`.validation`),
the loss, optimizers and schedules, the state a run carries across checkpoints
(:mod:`.run_state`), progress and the command that resumes a run, the run's data
(:mod:`.run_data`), multi-process training and the run directory's lock.

May import inspect, decode, checkpoint and everything below; never bench or cli.
"""
