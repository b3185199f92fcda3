"""``python -m modelcycle`` runs the command line."""

from modelcycle.cli import main

if __name__ == "__main__":
    main()
