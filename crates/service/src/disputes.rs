//! Disputes of top-ups: opening one books the chargeback against the wallet and the merchants it paid.
