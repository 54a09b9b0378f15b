//! Settlement: what moves from the held deposit to the merchant when it redeems its best proof,
//! and what goes back to the customer when the channel closes or expires.
//!
//! Proofs are cumulative (a PayWord position is worth everything before it, a voucher states
//! the total), so a redemption moves the best proof's amount minus what was already redeemed,
//! never the proof's whole amount again. Redeeming the same proof twice moves nothing the second
//! time, and so does an older proof after a newer one. Closing moves what the best proof still
//! owes and releases the rest of the deposit, once: `redeemed + release = deposit`.
//!
//! [`Settlement`] is the state (the deposit, what was redeemed, whether it is closed); its
//! methods are pure decisions that the caller books in the ledger and stores with the new state
//! in one step. A caller that retries a redemption should give the ledger transfer an id derived
//! from (channel, `redeemed` after it), so a retry names the same transfer and moves it once
//! however often it is submitted. The merchant's fee plan splits each redeemed amount as any
//! other payment; that is the caller's, not this module's.

use farthing_ledger::Amount;

/// A channel's settlement state.
///
/// Invariant (fields private): `redeemed ≤ deposit`, and nothing moves once `closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settlement {
    deposit: Amount,
    redeemed: Amount,
    closed: bool,
}

/// What closing a channel moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closing {
    /// To the merchant: what the best proof still owed.
    pub redeem: Amount,
    /// Back to the customer: the rest of the deposit.
    pub release: Amount,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettlementError {
    #[error("the proof's amount {best} is above the deposit {deposit}")]
    BestAboveDeposit { best: Amount, deposit: Amount },
    #[error("the redeemed amount {redeemed} is above the deposit {deposit}")]
    RedeemedAboveDeposit { redeemed: Amount, deposit: Amount },
    #[error("the channel is closed")]
    Closed,
}

impl SettlementError {
    /// The field at fault, as an API names it.
    pub fn field(&self) -> &'static str {
        match self {
            SettlementError::BestAboveDeposit { .. } => "amount",
            SettlementError::RedeemedAboveDeposit { .. } => "redeemed",
            SettlementError::Closed => "channel",
        }
    }
}

impl Settlement {
    /// A channel just opened: nothing redeemed.
    pub fn open(deposit: Amount) -> Settlement {
        Settlement {
            deposit,
            redeemed: Amount::ZERO,
            closed: false,
        }
    }

    /// State as stored, checked.
    pub fn resume(
        deposit: Amount,
        redeemed: Amount,
        closed: bool,
    ) -> Result<Settlement, SettlementError> {
        if redeemed > deposit {
            return Err(SettlementError::RedeemedAboveDeposit { redeemed, deposit });
        }
        Ok(Settlement {
            deposit,
            redeemed,
            closed,
        })
    }

    pub fn deposit(&self) -> Amount {
        self.deposit
    }

    /// Everything moved to the merchant so far.
    pub fn redeemed(&self) -> Amount {
        self.redeemed
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The merchant redeems a proof worth `best` in all: the amount to move now (zero for a
    /// proof already redeemed or older than one that was).
    pub fn redeem(&mut self, best: Amount) -> Result<Amount, SettlementError> {
        if self.closed {
            return Err(SettlementError::Closed);
        }
        if best > self.deposit {
            return Err(SettlementError::BestAboveDeposit {
                best,
                deposit: self.deposit,
            });
        }
        let now = best.checked_sub(self.redeemed).unwrap_or(Amount::ZERO);
        self.redeemed = self.redeemed.max(best);
        Ok(now)
    }

    /// Closes the channel on its best proof (worth `best`, zero if there is none): the last
    /// redemption and the release, once.
    pub fn close(&mut self, best: Amount) -> Result<Closing, SettlementError> {
        let redeem = self.redeem(best)?;
        self.closed = true;
        let release = Amount(self.deposit.0 - self.redeemed.0);
        assert_eq!(
            self.redeemed.0 + release.0,
            self.deposit.0,
            "a closed channel's deposit is all redeemed or released"
        );
        Ok(Closing { redeem, release })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redemptions_move_the_difference_once() {
        let mut s = Settlement::open(Amount(100));
        assert_eq!(s.redeem(Amount(30)), Ok(Amount(30)));
        assert_eq!(
            s.redeem(Amount(30)),
            Ok(Amount::ZERO),
            "the same proof again"
        );
        assert_eq!(s.redeem(Amount(20)), Ok(Amount::ZERO), "an older proof");
        assert_eq!(s.redeem(Amount(45)), Ok(Amount(15)));
        assert_eq!(s.redeemed(), Amount(45));
        let closing = s.close(Amount(50)).unwrap();
        assert_eq!(
            closing,
            Closing {
                redeem: Amount(5),
                release: Amount(50)
            }
        );
    }

    #[test]
    fn closing_without_a_proof_releases_everything() {
        let mut s = Settlement::open(Amount(100));
        let closing = s.close(Amount::ZERO).unwrap();
        assert_eq!(closing.release, Amount(100));
        assert_eq!(closing.redeem, Amount::ZERO);
    }

    #[test]
    fn a_closed_channel_moves_nothing_more() {
        let mut s = Settlement::open(Amount(100));
        s.close(Amount(40)).unwrap();
        assert_eq!(s.redeem(Amount(60)), Err(SettlementError::Closed));
        assert_eq!(s.close(Amount(60)), Err(SettlementError::Closed));
        assert_eq!(SettlementError::Closed.field(), "channel");
        assert_eq!(s.redeemed(), Amount(40));
    }

    #[test]
    fn a_proof_above_the_deposit_is_refused() {
        let mut s = Settlement::open(Amount(100));
        let refused = s.redeem(Amount(101));
        let want = SettlementError::BestAboveDeposit {
            best: Amount(101),
            deposit: Amount(100),
        };
        assert_eq!(refused, Err(want));
        assert_eq!(want.field(), "amount");
        assert_eq!(s.close(Amount(101)), Err(want));
        assert!(!s.is_closed(), "a refused close leaves the channel open");
    }

    #[test]
    fn stored_state_is_checked() {
        let refused = Settlement::resume(Amount(10), Amount(11), false);
        let want = SettlementError::RedeemedAboveDeposit {
            redeemed: Amount(11),
            deposit: Amount(10),
        };
        assert_eq!(refused, Err(want));
        assert_eq!(want.field(), "redeemed");
        let mut s = Settlement::resume(Amount(10), Amount(4), false).unwrap();
        assert_eq!(s.redeem(Amount(6)), Ok(Amount(2)));
    }
}
