"""Never imported by a passing test: if a config could make attnbench import a module by name,
importing this one would put it in sys.modules (test_safe_defaults checks it does not)."""

IMPORTED = True


class Boom:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a config instantiated an arbitrary class")
