//! Merchants: creating one and reading it.
