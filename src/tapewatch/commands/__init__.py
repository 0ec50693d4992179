"""Command-line commands, one module per family; tapewatch.cli assembles them into one Typer app."""
