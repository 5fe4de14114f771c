"""Allow ``python -m peerstep.cli``."""

from peerstep.cli import main

main()
