"""One exception family for everything a user can get wrong, each mapped to an exit code."""

from __future__ import annotations


class AinnError(Exception):
    """A problem the user can fix: printed as one line on stderr, never as a traceback."""

    exit_code = 1


class UsageError(AinnError):
    """A bad option value or a contradictory combination of options."""

    exit_code = 2


class AudioError(AinnError):
    """An input that is missing, unreadable, not audio, empty, too short or silent."""


class OutputError(AinnError):
    """An output that exists already, cannot be written, or would replace an input."""


class OutputExists(OutputError):
    """An output that exists already and may not be replaced (no --overwrite); a folder run skips it."""


class BundleError(AinnError):
    """A model bundle that is missing, corrupted, or does not match its configs."""


class DeviceError(AinnError):
    """A requested device that this machine does not have."""


class CorpusError(AinnError):
    """A download that failed or does not match its published size or checksum, or an archive that holds what an
    official one never does (a link, a path outside it, a member beyond the size caps)."""
