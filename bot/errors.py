"""The small error hierarchy that the router boundary catches and turns into a reply or a log."""


class KefuError(Exception):
    """Base of every error kefu raises on purpose."""


class ConfigError(KefuError):
    """The configuration file is missing, unreadable or invalid; the message is one line."""


class KnowledgeBaseError(KefuError):
    """The knowledge base could not be loaded; `problems` lists every one with file:line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the knowledge base")
        self.problems = problems


class SheetError(KefuError):
    """A spreadsheet given to `kefu kb import` cannot be used; each problem is one line.
    Not a knowledge-base problem: nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ChannelError(KefuError):
    """A channel adapter failed."""


class ChannelSendError(ChannelError):
    """Sending to a channel failed; `retryable` says whether trying again may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class WindowRefusal(ChannelSendError):
    """The platform refused a message for its own window or quota (its view can differ from
    kefu's): nothing more goes to this customer until they write again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
