"""The commands and the composition: which modules a chain runs, config files, the CLI."""
