import pytest

from . import fake_provider as fakes


@pytest.fixture
def provider():
    """A fresh fake provider server; the test module adds the routes its API has."""
    server = fakes.start()
    yield server
    fakes.stop(server)
