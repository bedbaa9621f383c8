"""One exception type for every mistake a user can make: the CLI prints it as one line."""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line and exit code 2."""


class DivergenceError(UserError):
    """Training produced a NaN or infinite loss."""


def one_line(exc: BaseException) -> str:
    """'ValueError: first line of its message': how an error from another process is reported."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"
