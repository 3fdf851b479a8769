"""``python -m programview`` = the ``programview`` command."""

from programview.cli import main

if __name__ == "__main__":
    main()
