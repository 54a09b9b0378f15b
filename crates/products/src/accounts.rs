//! The ledger accounts behind the products. Each account's id is derived from what it is for
//! (a customer's wallet in an asset, the platform's fee revenue in an asset, ...), so the
//! product layer never stores account ids and concurrent callers name the same account.
//!
//! None of these accounts has an owner record in the API's account table, so no API key —
//! operator or merchant — can move their money with `POST /v1/transfers`: only the product
//! endpoints, with their consent and limit checks, can.

use crate::ids::{AllowanceId, CampaignId, CustomerId, MerchantId, TabId};
use farthing_ledger::{Account, AccountFlags, AccountId, Amount, AssetId};
use sha2::{Digest, Sha256};

/// Account codes (the ledger's `code` field), so a ledger dump reads as a chart of accounts.
pub const CODE_WALLET: u16 = 100;
pub const CODE_TAB: u16 = 101;
pub const CODE_EARNINGS: u16 = 200;
pub const CODE_RESERVE: u16 = 201;
pub const CODE_MERCHANT_DEBT: u16 = 202;
pub const CODE_PLATFORM_REVENUE: u16 = 300;
pub const CODE_ROUNDING: u16 = 301;
pub const CODE_PROCESSOR_CLEARING: u16 = 302;
pub const CODE_PROCESSOR_FEES: u16 = 303;
pub const CODE_PAYOUT_CLEARING: u16 = 304;
pub const CODE_DISPUTE_LOSSES: u16 = 305;
pub const CODE_ESCROW_ACCOUNT: u16 = 306;
pub const CODE_CAMPAIGN: u16 = 307;
pub const CODE_LIMIT_SOURCE: u16 = 400;
pub const CODE_LIMIT_SINK: u16 = 401;
pub const CODE_ALLOWANCE_PERIOD: u16 = 402;
pub const CODE_MONTHLY_CAP: u16 = 403;

/// Transfer codes: what a movement was.
pub const CODE_CHARGE: u16 = 1;
pub const CODE_TIP: u16 = 2;
pub const CODE_TOPUP: u16 = 3;
pub const CODE_PROCESSOR_FEE: u16 = 4;
pub const CODE_REFUND: u16 = 5;
pub const CODE_PAYOUT: u16 = 6;
pub const CODE_PAYOUT_RETURN: u16 = 7;
pub const CODE_LIMIT_FUNDING: u16 = 8;
pub const CODE_LIMIT_USE: u16 = 9;
pub const CODE_RESERVE_HOLD: u16 = 10;
pub const CODE_TAB_SETTLEMENT: u16 = 11;
pub const CODE_CHARGEBACK: u16 = 12;
pub const CODE_RESERVE_RELEASE: u16 = 13;
/// An escrow hold, its re-holds and the capture's post.
pub const CODE_ESCROW: u16 = 14;
/// A capture's split from escrow to the worker, the platform and rounding.
pub const CODE_ESCROW_CAPTURE: u16 = 15;
/// A contribution to a campaign: held (all-or-nothing) or paid (keep-what-you-raise).
pub const CODE_CONTRIBUTION: u16 = 16;
/// A merchant's earnings paying down its chargeback debt, as a payout nets it.
pub const CODE_DEBT_RECOVERY: u16 = 17;

/// Accounts whose ids one thread remembers.
const ID_MEMO_MAX: usize = 1 << 16;

thread_local! {
    static ID_MEMO: std::cell::RefCell<foldhash::HashMap<(LedgerAccount, u32), AccountId>> =
        std::cell::RefCell::new(foldhash::HashMap::default());
}

/// A product ledger account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LedgerAccount {
    /// A customer's prepaid wallet: never negative.
    Wallet {
        customer: CustomerId,
    },
    /// A customer's post-pay tab: may owe up to `limit`, never more.
    Tab {
        tab: TabId,
        limit: u128,
    },
    /// A merchant's earnings, available for payout: never negative.
    Earnings {
        merchant: MerchantId,
    },
    /// What a merchant owes the platform (chargebacks its earnings could not cover).
    MerchantDebt {
        merchant: MerchantId,
    },
    /// The part of a merchant's earnings held back as a reserve.
    Reserve {
        merchant: MerchantId,
    },
    /// Platform fees earned.
    PlatformRevenue,
    /// Remainders of splits that no payee's share could take (see `farthing_products::fees`).
    Rounding,
    /// Money in transit with the card processor: debited by top-ups, credited by its fees.
    ProcessorClearing,
    /// What card processing cost the platform (an expense).
    ProcessorFees,
    /// Chargebacks no charge could cover: the platform's loss.
    DisputeLosses,
    /// Money sent to merchants' bank accounts.
    PayoutClearing,
    /// A crowdfunding campaign's pot: contributions are held towards it (all-or-nothing) or
    /// pass through it (keep-what-you-raise); its credits are what was raised.
    Campaign {
        campaign: CampaignId,
    },
    /// Where a captured escrow hold passes on its way to the worker and the platform (nets to
    /// zero within each capture's chain).
    Escrow,
    /// Where limit budgets (allowances, caps) come from and go to: memo accounts, not money.
    LimitSource,
    LimitSink,
    /// An allowance's budget for one period: never negative.
    AllowancePeriod {
        allowance: AllowanceId,
        period: u64,
    },
    /// A customer's spending budget for one calendar month: never negative.
    MonthlyCap {
        customer: CustomerId,
        month: u64,
    },
}

impl LedgerAccount {
    fn kind(self) -> (u16, u128, u64) {
        match self {
            LedgerAccount::Wallet { customer } => (CODE_WALLET, customer.0, 0),
            LedgerAccount::Tab { tab, .. } => (CODE_TAB, tab.0, 0),
            LedgerAccount::Earnings { merchant } => (CODE_EARNINGS, merchant.0, 0),
            LedgerAccount::Reserve { merchant } => (CODE_RESERVE, merchant.0, 0),
            LedgerAccount::MerchantDebt { merchant } => (CODE_MERCHANT_DEBT, merchant.0, 0),
            LedgerAccount::PlatformRevenue => (CODE_PLATFORM_REVENUE, 0, 0),
            LedgerAccount::Rounding => (CODE_ROUNDING, 0, 0),
            LedgerAccount::ProcessorClearing => (CODE_PROCESSOR_CLEARING, 0, 0),
            LedgerAccount::ProcessorFees => (CODE_PROCESSOR_FEES, 0, 0),
            LedgerAccount::PayoutClearing => (CODE_PAYOUT_CLEARING, 0, 0),
            LedgerAccount::Escrow => (CODE_ESCROW_ACCOUNT, 0, 0),
            LedgerAccount::Campaign { campaign } => (CODE_CAMPAIGN, campaign.0, 0),
            LedgerAccount::DisputeLosses => (CODE_DISPUTE_LOSSES, 0, 0),
            LedgerAccount::LimitSource => (CODE_LIMIT_SOURCE, 0, 0),
            LedgerAccount::LimitSink => (CODE_LIMIT_SINK, 0, 0),
            LedgerAccount::AllowancePeriod { allowance, period } => {
                (CODE_ALLOWANCE_PERIOD, allowance.0, period)
            }
            LedgerAccount::MonthlyCap { customer, month } => (CODE_MONTHLY_CAP, customer.0, month),
        }
    }

    /// The account's id in `asset`. A charge names about twenty accounts; the SHA-256 behind
    /// each is remembered per thread (up to [`ID_MEMO_MAX`] accounts, then forgotten at once).
    pub fn id(self, asset: AssetId) -> AccountId {
        ID_MEMO.with_borrow_mut(|memo| {
            if let Some(id) = memo.get(&(self, asset.0)) {
                return *id;
            }
            if memo.len() >= ID_MEMO_MAX {
                memo.clear();
            }
            let id = self.derive_id(asset);
            memo.insert((self, asset.0), id);
            id
        })
    }

    fn derive_id(self, asset: AssetId) -> AccountId {
        let (code, entity, period) = self.kind();
        AccountId(derive(&[
            b"farthing/product-account",
            &code.to_le_bytes(),
            &entity.to_le_bytes(),
            &period.to_le_bytes(),
            &asset.0.to_le_bytes(),
        ]))
    }

    /// The account to create in `asset`.
    pub fn account(self, asset: AssetId) -> Account {
        let (code, _, _) = self.kind();
        let never_negative = matches!(
            self,
            LedgerAccount::Wallet { .. }
                | LedgerAccount::Tab { .. }
                | LedgerAccount::Earnings { .. }
                | LedgerAccount::AllowancePeriod { .. }
                | LedgerAccount::MonthlyCap { .. }
        );
        Account {
            id: self.id(asset),
            asset,
            code,
            flags: if never_negative {
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
            } else {
                AccountFlags::empty()
            },
            overdraft_limit: match self {
                LedgerAccount::Tab { limit, .. } => Amount(limit),
                _ => Amount::ZERO,
            },
            user_data: 0,
        }
    }
}

/// The id of the one transfer that funds a limit account.
pub fn funding_transfer_id(limit: AccountId) -> u128 {
    derive(&[b"farthing/limit-funding", &limit.0.to_le_bytes()])
}

/// The first transfer id of an object's chain (`purpose` tells its chains apart: a charge, its
/// n-th refund, ...). Runs of 64 ids never reach 0 or `u128::MAX`.
pub fn chain_id(object: u128, purpose: &str, index: u64) -> u128 {
    let id = derive(&[
        b"farthing/product-chain",
        &object.to_le_bytes(),
        purpose.as_bytes(),
        &index.to_le_bytes(),
    ]);
    (id >> 1) + 1
}

fn derive(parts: &[&[u8]]) -> u128 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u32).to_le_bytes());
        hasher.update(part);
    }
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    match u128::from_le_bytes(bytes) {
        0 => 1,
        u128::MAX => u128::MAX - 1,
        id => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_by_kind_entity_period_and_asset() {
        let a = [
            LedgerAccount::Wallet {
                customer: CustomerId(1),
            }
            .id(AssetId(1)),
            LedgerAccount::Wallet {
                customer: CustomerId(2),
            }
            .id(AssetId(1)),
            LedgerAccount::Wallet {
                customer: CustomerId(1),
            }
            .id(AssetId(2)),
            LedgerAccount::Earnings {
                merchant: MerchantId(1),
            }
            .id(AssetId(1)),
            LedgerAccount::MonthlyCap {
                customer: CustomerId(1),
                month: 1,
            }
            .id(AssetId(1)),
            LedgerAccount::MonthlyCap {
                customer: CustomerId(1),
                month: 2,
            }
            .id(AssetId(1)),
        ];
        let unique: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(unique.len(), a.len());
        assert_eq!(
            a[0],
            LedgerAccount::Wallet {
                customer: CustomerId(1)
            }
            .id(AssetId(1))
        );
        // The remembered id is the derived one.
        let wallet = LedgerAccount::Wallet {
            customer: CustomerId(1),
        };
        assert_eq!(wallet.id(AssetId(1)), wallet.derive_id(AssetId(1)));
    }

    #[test]
    fn limits_and_balances_are_never_negative_but_clearing_accounts_may_be() {
        let flags = |a: LedgerAccount| a.account(AssetId(1)).flags;
        assert!(flags(LedgerAccount::Wallet {
            customer: CustomerId(1)
        })
        .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS));
        assert!(flags(LedgerAccount::MonthlyCap {
            customer: CustomerId(1),
            month: 3
        })
        .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS));
        assert_eq!(
            flags(LedgerAccount::ProcessorClearing),
            AccountFlags::empty()
        );
    }
}
