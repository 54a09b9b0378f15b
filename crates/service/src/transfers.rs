//! Plain ledger transfers, chains and batches between API accounts.
