"""Exceptions with messages meant for a person: what was wrong, where, and what is allowed."""


class RmrouteError(Exception):
    """Base class; the CLI prints these as one line and exits non-zero."""


class ConfigError(RmrouteError):
    """A config file is invalid (the message names the file, key path and value)."""


class PluginError(RmrouteError):
    """A plugin could not be found, built or registered."""


class UnknownPluginError(PluginError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class NotBuiltError(RmrouteError):
    """A part of rmroute that a config asks for does not exist yet."""


class ResultsError(RmrouteError):
    """A results file is corrupt, foreign or of an unknown schema version."""


class ScoreError(RmrouteError):
    """Scores cannot be trusted: an RM, its transport or the score cache is broken (not a per-item abstention)."""
