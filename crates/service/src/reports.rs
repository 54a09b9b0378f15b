//! The fee economics report and other reads across products.
