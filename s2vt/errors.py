"""The one exception type that marks an error a user can cause (bad file, bad config...)."""


class S2VTError(Exception):
    """An error the user can fix; the CLI prints it as one line and exits non-zero."""


class ConfigError(S2VTError):
    """A config file or override is wrong (unknown key, wrong type)."""


class VideoError(S2VTError):
    """A video cannot be opened or decoded; the message names the file."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one short line for a user: its first non-empty line, or its type.

    Decoders and C++ libraries raise multi-line texts with stack dumps; a user (and a
    failures file read line by line) needs one line.

    Args:
        error: any exception.
        limit: the most characters kept.

    Returns:
        The text, whitespace collapsed, cut to ``limit`` characters.
    """
    for line in str(error).splitlines():
        text = " ".join(line.split())
        if text:
            return text[:limit]
    return type(error).__name__
