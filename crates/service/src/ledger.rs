//! The operator's reconciliation view of the ledger.
