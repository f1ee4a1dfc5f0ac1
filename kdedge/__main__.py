"""``python -m kdedge``: the CLI, for environments where the ``kdedge`` script is not on PATH
(a checkout used through PYTHONPATH, a locked-down venv)."""

from kdedge.cli import main

if __name__ == "__main__":
    main()
