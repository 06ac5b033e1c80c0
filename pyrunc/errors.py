"""The one exception the CLI turns into a single line on stderr and exit status 1."""


class PyruncError(Exception):
    """A failure the user can act on; str(err) is the whole message."""
