"""The ``syncd`` subcommands, one module each."""
