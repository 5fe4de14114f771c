"""Allow ``python -m peerstep``."""

from peerstep.cli import main

main()
