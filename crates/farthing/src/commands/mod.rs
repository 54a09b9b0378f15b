//! Subcommands of the `farthing` binary.
