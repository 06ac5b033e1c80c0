"""The one exception the CLI turns into a single line on stderr and exit status 1."""


class PyruncError(Exception):
    """A failure the user can act on; str(err) is the whole message. `errno` is the OS error
    behind it, where one is, for callers that must tell permission from other failures."""

    errno: int | None = None
