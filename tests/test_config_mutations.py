"""A property of config validation: any config a user could write by mistake (a valid one with a
value of the wrong type, a number out of range, a misspelt key, a section nested one level too
deep or too shallow, a required key deleted) either validates or is refused in one line that
names the key (``config error in <key>: ...``), never with another exception or a traceback.
Mutations are drawn from a seeded generator, so a failure is reproducible from its index."""
import copy
import random
from pathlib import Path

import pytest
import yaml

from pipeline.config import validate_config
from pipeline.errors import UserError

REPO = Path(__file__).resolve().parent.parent
BASES = {path.stem: yaml.safe_load(path.read_text()) for path in [
    REPO / "config" / "config.yaml", *sorted((REPO / "config" / "studies").glob("*.yaml")),
    *sorted((REPO / "tests" / "configs").glob("*.yaml"))]}
VALUES = [None, "x", "", -1, 0, 1, 2.5, -0.5, 1e9, True, False, [], {}, [1, "a"], {"a": 1}, "1e-3", float("nan"),
          float("inf"), 10 ** 30, [0.5], {"model": "cnn"}]
MUTATIONS = 300


def places(node, path=()):
    """Every key path of a config, the root excluded."""
    if path:
        yield path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from places(value, (*path, key))


def misspelt(key, rng: random.Random):
    if not isinstance(key, str) or len(key) < 2:
        return f"{key}x"
    i = rng.randrange(len(key) - 1)
    return rng.choice([key[:i] + key[i + 1:], key[:i] + key[i] + key[i:], key[:i] + key[i + 1] + key[i] + key[i + 2:],
                       key.upper()])


def mutate(config, rng: random.Random) -> str:
    """One random mistake in ``config``, in place; what it did."""
    path = rng.choice(list(places(config)))
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    last, value = path[-1], parent[path[-1]]
    kind = rng.choice(["type", "range", "misspell", "nesting", "delete"])
    if kind == "type":
        parent[last] = copy.deepcopy(rng.choice(VALUES))
    elif kind == "range":
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        parent[last] = rng.choice([-value, 0, value * 10 ** 6, value + 0.5] if number else [-1, 0, 1e-12, 10 ** 6])
    elif kind == "misspell" and isinstance(parent, dict):
        parent[misspelt(last, rng)] = parent.pop(last)
    elif kind == "nesting":
        inner = next(iter(value.values())) if isinstance(value, dict) and value else value
        parent[last] = rng.choice([{str(last): value}, [value], inner])
    elif isinstance(parent, dict):
        del parent[last]
    else:
        parent.pop(last)
    return f"{kind} {'.'.join(map(str, path))}"


def test_base_configs_validate():
    for config in BASES.values():
        validate_config(copy.deepcopy(config))


@pytest.mark.parametrize("seed", range(3))
def test_mutated_configs_validate_or_name_the_key_in_one_line(seed):
    rng = random.Random(seed)
    for i in range(MUTATIONS // 3):
        name = rng.choice(sorted(BASES))
        config = copy.deepcopy(BASES[name])
        done = [mutate(config, rng) for _ in range(rng.randint(1, 3))]
        try:
            validate_config(config)
        except UserError as error:
            message = str(error)
            assert "\n" not in message and message.startswith("config error in "), (i, name, done, message)
        except Exception as error:  # anything else is a traceback for the user
            pytest.fail(f"mutation {i} of {name} ({'; '.join(done)}) raised {type(error).__name__}: {error}")
