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
