"""Errors a user can fix. Entry points print them as one line and exit non-zero."""


class Seq2SeqError(Exception):
    """A problem with the user's input, config or files, stated in one line."""

    exit_code = 1
    prefix = "error"


class ConfigError(Seq2SeqError):
    """An invalid configuration key, value or combination."""

    exit_code = 2


class DataError(Seq2SeqError):
    """A corpus file that is missing, unreadable or inconsistent."""


class MissingSplitError(DataError):
    """No files for a split (a test split is optional; train and valid are not)."""


class CheckpointError(Seq2SeqError):
    """A checkpoint that is missing, unsafe or does not fit the model."""


class OutputError(Seq2SeqError):
    """A file we were asked to write that cannot be written (a directory, no permission, disk full)."""


class ExportError(Seq2SeqError):
    """A model that cannot be exported to another engine, or an export directory that cannot be used."""
