"""The one exception type that marks an error a user can cause (bad file, bad config...)."""


class S2VTError(Exception):
    """An error the user can fix; the CLI prints it as one line and exits non-zero."""


class ConfigError(S2VTError):
    """A config file or override is wrong (unknown key, wrong type)."""


class VideoError(S2VTError):
    """A video cannot be opened or decoded; the message names the file."""
