import pytest

import tiny


@pytest.fixture(scope="module")
def data():
    return tiny.dataset()
