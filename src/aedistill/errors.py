"""One exception type for problems the user can fix (bad config, bad data, bad model file)."""


class UserInputError(Exception):
    """A problem with the user's input; its message is one line naming the file or key.

    Workflow scripts let it propagate: the message is the last line of the rule's log and
    the job exits non-zero without writing its outputs.
    """
