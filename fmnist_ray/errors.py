"""The one exception type the project raises for problems a user can fix."""


class UserError(Exception):
    """A problem with the user's input or environment, carrying a one-line message and its fix.

    The CLI prints the message on one line and exits with code 2; tracebacks are for bugs only.
    """
