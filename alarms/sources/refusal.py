"""A source's "no": what it answers a request it will not take, with the status, body and
headers the answer carries. The API renders it as it is (alarms/api/errors.py), and so does
the device fast path; a source with an error shape of its own (PagerDuty's) gives that body."""


class Refused(Exception):
    def __init__(self, status: int, message: str, *, body: dict | None = None, **headers):
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else {"error": message}
        self.headers = headers


def invalid_input(fields: dict) -> dict:
    """The body of a 400 for data that failed validation, field by field."""
    return {"error": "invalid input", "fields": fields}


def validated(serializer_class, data) -> dict:
    """The data as the serializer validates it; a 400 naming each field that failed."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise Refused(400, "invalid input", body=invalid_input(serializer.errors))
    return serializer.validated_data


def field_errors(detail, path: str = "") -> list[tuple[str, str]]:
    """Each problem of a serializer's errors with the path of its field, as the senders' own
    APIs name them ("payload.summary", "responders[0]"; '' for the body as a whole)."""
    if isinstance(detail, dict):
        return [found for key, value in detail.items()
                for found in field_errors(value, _path(path, key))]  # fmt: skip
    if isinstance(detail, list):
        return [found for item in detail for found in field_errors(item, path)]
    return [(path, str(detail))]


def _path(path: str, key) -> str:
    if key == "non_field_errors":
        return path
    if isinstance(key, int):  # an item of a list of objects
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)
