"""The `minirun` command line: thin typer verbs over the library (one module per verb group)."""
