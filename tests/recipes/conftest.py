"""The tests here import the recipes as the scripts do: ``recipes/`` first on ``sys.path``
(``recipe_helpers`` puts it there), whichever of them runs first or alone."""

import recipe_helpers  # noqa: F401
