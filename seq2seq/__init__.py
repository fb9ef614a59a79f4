"""seq2seq: attention-based neural machine translation you can train, run, score and inspect."""

__version__ = "0.1.0"
