"""Checkpoint files: writing and safely reading them, rebuilding model and tokenizers from one
(:mod:`.store`), the checks of a file we are given before anything is built (:mod:`.checks`),
a run's ``checkpoints/`` directory and averaging.

Between the model and its users: decoding, export and training all load checkpoints, so the
format lives below them. May import model, data, config and utils.
"""
