"""`python -m minirun` — the same as the `minirun` command."""

from minirun.cli.main import main

main()
