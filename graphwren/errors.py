"""Exception types that graphwren itself raises (user exceptions travel unchanged)."""


class GraphwrenError(Exception):
    """Base class for errors raised by graphwren itself."""


class StorageError(GraphwrenError):
    """A store could not be opened or reached (bad URL, endpoint down, missing bucket)."""


class MissingKey(GraphwrenError, KeyError):
    """A key that was expected in storage is not there."""

    def __str__(self):  # KeyError quotes its argument; a plain message reads better
        return str(self.args[0]) if self.args else "missing key"


class FieldError(GraphwrenError, KeyError):
    """A record has no such field (a key given by name or position)."""

    def __str__(self):
        return str(self.args[0]) if self.args else "no such field"


class TaskLost(GraphwrenError):
    """A task ran out of attempts because its worker died or it timed out every time."""


class RemoteError(GraphwrenError):
    """Stands in for a user exception that could not be pickled back from the worker."""

    def __init__(self, type_name, message, traceback_text=""):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.remote_traceback = traceback_text


class IntegrityError(GraphwrenError):
    """An object in storage failed its HMAC check: graphwren refused to decode or unpickle it."""
