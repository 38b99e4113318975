"""The one exception type for mistakes a user can fix (bad config value, missing data file).

Stage command lines print it as a single line and exit with status 2; anything else is a bug and
keeps its traceback.
"""


class UserError(ValueError):
    pass
