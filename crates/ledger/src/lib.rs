//! farthing ledger
