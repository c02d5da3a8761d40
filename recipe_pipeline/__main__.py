"""``python -m recipe_pipeline``: the same as the ``recipe-pipeline`` command."""

from recipe_pipeline.cli import main

raise SystemExit(main())
