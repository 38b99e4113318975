"""The registries: duplicates and unknown names are errors; every component declares its
parameters as a frozen dataclass registered with it, which its registry checks config entries
against; every registered name builds with its defaults."""
import dataclasses
from dataclasses import dataclass

import pytest

from pipeline.data import DATASETS
from pipeline.errors import UserError
from pipeline.losses import LOSSES
from pipeline.models import MODELS
from pipeline.params import NoParams
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
    with pytest.raises(UserError, match=r"^unknown widget 'c'; known: a, b$"):
        registry.params("c", {}, "widgets.c")


@dataclass(frozen=True)
class Size:
    width: int = 3  # a test parameter
    depth: int = 1

    def __post_init__(self):
        if self.width < 1:
            raise UserError(f"width must be >= 1, got {self.width}")


class Gadget:
    @dataclass(frozen=True)
    class Params:
        colour: str = "red"


def test_params_are_checked_against_the_registered_dataclass():
    registry = Registry("widget")
    registry.register("sized", Size)(lambda params: params)
    registry.register("gadget")(Gadget)  # its own Params attribute
    registry.register("plain")(object)  # no parameters
    assert registry.params_type("sized") is Size
    assert registry.params_type("gadget") is Gadget.Params
    assert registry.params_type("plain") is NoParams
    assert registry.params("sized", {"width": 5}, "widgets.sized") == Size(width=5, depth=1)
    assert registry.params("sized", None) == registry.params("sized", {}) == Size(3, 1)
    assert registry.params("sized", Size(7)) == Size(7)  # already checked: as it is
    assert registry.params("gadget", {"colour": "blue"}) == Gadget.Params("blue")
    assert registry.params("plain", {}, "widgets.plain") == NoParams()


def test_unknown_parameter_is_one_line_naming_the_allowed_ones():
    registry = Registry("widget")
    registry.register("sized", Size)(object)
    registry.register("plain")(object)
    with pytest.raises(UserError) as info:
        registry.params("sized", {"widht": 5}, "widgets.sized")
    assert str(info.value) == "config error in widgets.sized: unknown parameter 'widht' for widget 'sized'; allowed: width, depth"
    with pytest.raises(UserError) as info:
        registry.params("sized", {"z": 1, "widht": 5, "depth": 2})
    assert str(info.value) == "unknown parameter 'widht', 'z' for widget 'sized'; allowed: width, depth"
    with pytest.raises(UserError) as info:
        registry.params("plain", {"width": 5}, "widgets.plain")
    assert str(info.value) == "config error in widgets.plain: unknown parameter 'width' for widget 'plain'; allowed: none"
    with pytest.raises(UserError, match=r"^widget 'sized' params must be a mapping of names to values, got \[5\]$"):
        registry.params("sized", [5])


def test_bad_value_is_the_params_own_error():
    registry = Registry("widget")
    registry.register("sized", Size)(object)
    with pytest.raises(UserError, match=r"^width must be >= 1, got 0$"):
        registry.params("sized", {"width": 0}, "widgets.sized")


@pytest.mark.parametrize("registry", [DATASETS, MODELS, SCORERS, SELECTORS, LOSSES], ids=lambda r: r.kind)
def test_every_component_declares_frozen_params(registry):
    for name in registry.names():
        cls = registry.params_type(name)
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, name
        # vid has no default layers, dual_beta no default scorer of the prediction means
        if (registry.kind, name) not in (("loss", "vid"), ("selector", "dual_beta")):
            defaults = registry.params(name, {}, f"x.{name}")
            assert defaults == cls()
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(defaults, "anything", 1)


@pytest.mark.parametrize("name", SCORERS.names())
def test_every_scorer_builds_with_its_defaults(name):
    scorer = build_scorer(name)
    assert scorer.name == name
    assert scorer.params == SCORERS.params_type(name)()


def test_selectors_registered():
    assert SELECTORS.names() == ["d2", "dual_beta", "easiest", "hardest", "herding", "kcenter", "medium", "random", "stratified"]


def test_every_scorer_is_one_file_of_its_name():
    """The scores rule's input is the scorer's own source file (pipeline/scorers/<name>.py), so
    that changing one scorer reruns its scores only: a scorer registered elsewhere would have none."""
    from pathlib import Path

    import pipeline.scorers

    folder = Path(pipeline.scorers.__file__).parent
    assert [name for name in SCORERS.names() if not (folder / f"{name}.py").exists()] == []
