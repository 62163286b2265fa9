"""One exception type for a user's mistake: the runner prints its message as one line and exits."""


class LadderError(Exception):
    """A problem the user can fix. The message says what is wrong and how to fix it."""
