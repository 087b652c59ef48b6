"""The library's own error: what a user can fix (a flag, a file, a folder), or a piece of work
that failed, in one line naming it. Commands turn it into that line and an exit code
(bertcommon.cli.run_command); library callers catch it like any exception."""


class BertpipeError(Exception):
    """One line naming the flag, file or folder at fault. `exit_code` 2: the input is wrong
    and the user can fix it; 1: the work itself failed."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
