"""Exceptions that carry a message meant for the user, not a traceback."""


class UserError(Exception):
    """Bad input from the user (idea file, config value, missing tool).

    The CLI prints the message as one line and exits with status 2; the message must
    name the problem and the fix.
    """


class IdeaStopped(Exception):
    """An idea cannot go on (budget spent, model API down, fix attempts exhausted).

    Everything done so far is committed and recorded in state.json; `--resume` picks up
    from there once the cause is dealt with.
    """
