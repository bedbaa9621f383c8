"""One exception type for every mistake a user can make: the CLI prints it as one line."""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line and exit code 2."""


class DivergenceError(UserError):
    """Training produced a NaN or infinite loss."""
