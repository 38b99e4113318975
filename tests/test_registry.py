"""The registries: duplicates and unknown names are errors; every registered name builds."""
import pytest

from pipeline.errors import UserError
from pipeline.registry import Registry
from pipeline.scorers import SCORERS, build_scorer
from pipeline.selectors import SELECTORS


def test_duplicate_name_is_an_error():
    registry = Registry("widget")
    registry.register("a")(object)
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        registry.register("a")(object)


def test_unknown_name_lists_the_known_ones():
    registry = Registry("widget")
    registry.register("b")(int)
    registry.register("a")(str)
    with pytest.raises(UserError, match=r"^unknown widget 'c'; known: a, b$"):
        registry.get("c")


@pytest.mark.parametrize("name", SCORERS.names())
def test_every_scorer_builds_with_its_defaults(name):
    assert build_scorer(name).name == name


def test_selectors_registered():
    assert SELECTORS.names() == ["easiest", "hardest", "medium", "random", "stratified"]
