"""``python -m kdedge.cli`` runs the CLI (same as the ``kdedge`` console script)."""

from kdedge.cli import main

main()
