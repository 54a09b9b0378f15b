//! Product records in the metadata store, and the writer that group-commits them: many
//! concurrent charges share one redb transaction (one fsync), so records keep up with the
//! ledger's rate.

use farthing_products::ids::{
    AllowanceId, CampaignId, ChargeId, ContributionId, CustomerId, DisputeId, HoldId, MerchantId,
    PayoutId, PlanId, RefundId, SettlementId, SubscriptionId, TabId, TopupId,
};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use farthing_ledger::Amount;
use farthing_products::fees::{FeePlan, RoundingRule};
use serde::{Deserialize, Serialize};

use crate::db::{IdempotencyRecord, IndexTable, RecordTable, RecordWrite, Store};
use crate::error::StoreError;

pub const CUSTOMERS: RecordTable = RecordTable::new("customers");
/// (creating merchant or 0, customer)
pub const CUSTOMERS_BY_CREATOR: IndexTable = IndexTable::new("customers_by_creator");
pub const ALLOWANCES: RecordTable = RecordTable::new("allowances");
/// (customer, allowance)
pub const ALLOWANCES_BY_CUSTOMER: IndexTable = IndexTable::new("allowances_by_customer");
pub const CHARGES: RecordTable = RecordTable::new("charges");
pub const TOPUPS: RecordTable = RecordTable::new("topups");
/// (customer, top-up)
pub const TOPUPS_BY_CUSTOMER: IndexTable = IndexTable::new("topups_by_customer");
/// Every top-up, for platform reports: (0, top-up)
pub const TOPUPS_ALL: IndexTable = IndexTable::new("topups_all");
pub const REFUNDS: RecordTable = RecordTable::new("refunds");
pub const MERCHANT_SETTINGS: RecordTable = RecordTable::new("merchant_settings");
pub const PAYOUTS: RecordTable = RecordTable::new("payouts");
pub const TABS: RecordTable = RecordTable::new("tabs");
/// (customer, tab)
pub const TABS_BY_CUSTOMER: IndexTable = IndexTable::new("tabs_by_customer");
pub const SETTLEMENTS: RecordTable = RecordTable::new("settlements");
/// (tab, settlement attempt)
pub const SETTLEMENTS_BY_TAB: IndexTable = IndexTable::new("settlements_by_tab");
/// Due work (tab period ends, settlement retries, scheduled payouts, pending payouts, ...), by
/// job id.
pub const JOBS: RecordTable = RecordTable::new("jobs");
pub const DISPUTES: RecordTable = RecordTable::new("disputes");
/// Escrow holds (what they are; where they stand is read from the ledger).
pub const HOLDS: RecordTable = RecordTable::new("holds");

pub const PLANS: RecordTable = RecordTable::new("plans");
pub const SUBSCRIPTIONS: RecordTable = RecordTable::new("subscriptions");

/// How often a subscription charges.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingInterval {
    Day,
    Week,
    Month,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanRecord {
    pub id: PlanId,
    pub merchant: MerchantId,
    pub name: String,
    pub asset: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
    pub interval: BillingInterval,
    pub trial_days: u32,
    pub created_ns: u64,
}

/// Where a subscription stands. Stored and shown as its snake_case name.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// In its free trial: the first period is charged when the trial ends.
    Trialing,
    Active,
    /// A period's charge failed several times and is still being retried.
    PastDue,
    /// Nothing is charged until it resumes.
    Paused,
    /// Ended: it changes no more.
    Canceled,
}

impl SubscriptionStatus {
    /// Whether the renewal job has nothing to do for it.
    pub fn is_stopped(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Canceled | SubscriptionStatus::Paused
        )
    }
}

/// A subscription to a plan, or a pledge (a customer-chosen amount to a creator).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub id: SubscriptionId,
    pub customer: CustomerId,
    pub merchant: MerchantId,
    pub plan: Option<PlanId>,
    pub asset: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
    pub interval: BillingInterval,
    /// Charged to the customer's tab (id, limit) instead of the wallet.
    pub tab: Option<(TabId, u128)>,
    pub status: SubscriptionStatus,
    pub cancel_at_period_end: bool,
    /// Periods are anchored here: period n ends at anchor + (n + 1) intervals.
    pub anchor_ns: u64,
    /// The period that starts at `anchor_ns`: period `n` starts `n − anchor_period` intervals
    /// after it. A resume after periods went by re-anchors at the resume (0 before any resume).
    #[serde(default)]
    pub anchor_period: u32,
    /// The next period to charge (0 is the first paid one).
    pub next_period: u32,
    /// When period `next_period` is charged.
    pub next_charge_ns: u64,
    /// Failed tries at charging `next_period`.
    pub failed_attempts: u32,
    pub last_failure: Option<String>,
    /// The charges made, in order.
    pub charges: Vec<ChargeId>,
    pub created_ns: u64,
    pub request_hash: Option<[u8; 32]>,
}

pub const CAMPAIGNS: RecordTable = RecordTable::new("campaigns");
pub const CONTRIBUTIONS: RecordTable = RecordTable::new("contributions");
/// (campaign, contribution)
pub const CONTRIBUTIONS_BY_CAMPAIGN: IndexTable = IndexTable::new("contributions_by_campaign");

/// How a campaign treats its contributions.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignMode {
    /// Contributions are held, captured only if the goal is met by the deadline, otherwise
    /// released.
    AllOrNothing,
    /// Contributions are paid to the creator at once.
    KeepWhatYouRaise,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CampaignRecord {
    pub id: CampaignId,
    pub merchant: MerchantId,
    pub name: String,
    pub asset: u32,
    #[serde(with = "minor")]
    pub goal: Amount,
    pub deadline_ns: u64,
    pub mode: CampaignMode,
    pub created_ns: u64,
    /// Set (durably) when the deadline job starts ending the campaign: from then on no
    /// contribution is taken, whatever the clock says.
    #[serde(default)]
    pub ended: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContributionRecord {
    pub id: ContributionId,
    pub campaign: CampaignId,
    pub customer: CustomerId,
    #[serde(with = "minor")]
    pub amount: Amount,
    pub created_ns: u64,
    pub request_hash: Option<[u8; 32]>,
}

/// What happens to what a hold still holds when it expires.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// Back to the customer's wallet.
    Release,
    /// To the worker, as a final capture.
    Capture,
}

/// An escrow hold: a customer funds a task for a worker (a merchant). Written once; its state
/// (held, captured in parts, released, expired) is the ledger's pending transfers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HoldRecord {
    pub id: HoldId,
    pub customer: CustomerId,
    pub merchant: MerchantId,
    pub asset: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
    pub description: Option<String>,
    pub on_expiry: OnExpiry,
    pub expires_ns: u64,
    pub created_ns: u64,
    pub request_hash: Option<[u8; 32]>,
}

/// A chargeback: the processor took back a top-up or a tab settlement, and the charges it had
/// funded were reversed to the processor, debiting the merchants concerned.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DisputeRecord {
    pub id: DisputeId,
    /// The top-up or settlement disputed.
    pub topup: Option<TopupId>,
    pub settlement: Option<SettlementId>,
    pub customer: CustomerId,
    pub asset: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
    pub reason: String,
    /// Taken back from the customer's wallet (what was still unspent).
    #[serde(with = "minor")]
    pub from_wallet: Amount,
    /// (merchant, amount debited) for each merchant concerned.
    pub merchants: Vec<(u128, String)>,
    /// (charge, amount reversed)
    pub charges: Vec<(ChargeId, String)>,
    pub created_ns: u64,
    /// Which attempt at booking it: its chain is `chain_id(dispute, "dispute", attempt)`.
    #[serde(default)]
    pub attempt: u64,
    /// Legs in its chain (zero-amount ones included: they keep their ids).
    #[serde(default)]
    pub legs: u64,
    /// Its chain is in the ledger and the charges it reversed say so. A record that is not
    /// booked is a plan written before its chain: see `routes/disputes.rs`.
    #[serde(default = "booked_default")]
    pub booked: bool,
}

/// Records written before plans were recorded are all booked.
fn booked_default() -> bool {
    true
}
/// (merchant, payout)
pub const PAYOUTS_BY_MERCHANT: IndexTable = IndexTable::new("payouts_by_merchant");

/// Every table a journal note may name (see [`crate::journal`]).
pub const JOURNAL_TABLES: crate::journal::Tables = crate::journal::Tables {
    records: &[
        CUSTOMERS,
        ALLOWANCES,
        CHARGES,
        TOPUPS,
        REFUNDS,
        MERCHANT_SETTINGS,
        PAYOUTS,
        TABS,
        SETTLEMENTS,
        JOBS,
        DISPUTES,
        HOLDS,
        CAMPAIGNS,
        CONTRIBUTIONS,
        PLANS,
        SUBSCRIPTIONS,
        crate::paywall::ENTITLEMENTS,
    ],
    indexes: &[
        CUSTOMERS_BY_CREATOR,
        ALLOWANCES_BY_CUSTOMER,
        TOPUPS_BY_CUSTOMER,
        TOPUPS_ALL,
        TABS_BY_CUSTOMER,
        SETTLEMENTS_BY_TAB,
        PAYOUTS_BY_MERCHANT,
        CONTRIBUTIONS_BY_CAMPAIGN,
        crate::paywall::ENTITLEMENTS_BY_HOLDER,
    ],
};

/// Most writes one transaction takes.
const WRITES_PER_COMMIT_MAX: usize = 8192;
/// Requests that may wait for the writer before callers block.
const QUEUE_MAX: usize = 16_384;

/// Records, idempotency records, and who waits for their commit.
type Job = (
    Vec<RecordWrite>,
    Option<(String, IdempotencyRecord)>,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// A thread that writes records in groups: everything queued while one transaction commits
/// goes into the next.
pub struct RecordWriter {
    tx: Sender<Job>,
}

impl RecordWriter {
    pub fn start(store: Arc<Store>) -> RecordWriter {
        let (tx, rx) = bounded::<Job>(QUEUE_MAX);
        std::thread::Builder::new()
            .name("farthing-records".into())
            .spawn(move || write_loop(store, rx))
            .expect("spawning the record writer");
        RecordWriter { tx }
    }

    /// Writes `writes` durably (with whatever else is queued); returns once committed.
    pub async fn write(&self, writes: Vec<RecordWrite>) -> Result<(), StoreError> {
        self.submit(writes, None).await
    }

    /// Stores the answer to a request under an Idempotency-Key (`key` is its store key)
    /// durably, in the next group commit.
    pub async fn write_idempotency(
        &self,
        key: String,
        record: IdempotencyRecord,
    ) -> Result<(), StoreError> {
        self.submit(Vec::new(), Some((key, record))).await
    }

    async fn submit(
        &self,
        writes: Vec<RecordWrite>,
        idempotency: Option<(String, IdempotencyRecord)>,
    ) -> Result<(), StoreError> {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.tx
            .send((writes, idempotency, reply))
            .map_err(|_| StoreError::Stopped("record writer"))?;
        done.await
            .map_err(|_| StoreError::Stopped("record writer"))?
            .map_err(StoreError::Write)
    }
}

fn write_loop(store: Arc<Store>, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut count = jobs[0].0.len() + 1;
        while count < WRITES_PER_COMMIT_MAX {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.0.len() + 1;
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let writes: Vec<RecordWrite> = jobs
            .iter()
            .flat_map(|(w, _, _)| w.iter().cloned())
            .collect();
        let idempotency: Vec<(String, IdempotencyRecord)> =
            jobs.iter().filter_map(|(_, i, _)| i.clone()).collect();
        let result = store
            .write_records(&writes, &idempotency)
            .map_err(|e| e.to_string());
        for (_, _, reply) in jobs {
            let _ = reply.send(result.clone());
        }
    }
}

/// Amounts are stored as exact integers in minor units (as strings: JSON numbers lose
/// precision past 2^53).
pub mod minor {
    use serde::{Deserialize, Deserializer, Serializer};

    use farthing_ledger::Amount;

    pub fn serialize<S: Serializer>(v: &Amount, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.0.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Amount).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentMethodRecord {
    pub token: String,
    pub brand: String,
    pub last4: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MonthlyCap {
    pub asset: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AutoTopupRecord {
    pub asset: u32,
    #[serde(with = "minor")]
    pub threshold: Amount,
    #[serde(with = "minor")]
    pub amount: Amount,
    pub payment_method: String,
    pub enabled: bool,
    /// Why it was disabled (a declined top-up), if it was.
    pub disabled_reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomerRecord {
    pub id: CustomerId,
    pub name: String,
    /// The merchant that created the customer, or 0 for the operator.
    pub creator: u128,
    pub created_ns: u64,
    pub monthly_cap: Option<MonthlyCap>,
    pub payment_methods: Vec<PaymentMethodRecord>,
    pub auto_topup: Option<AutoTopupRecord>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllowancePeriod {
    Day,
    Month,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AllowanceRecord {
    pub id: AllowanceId,
    pub customer: CustomerId,
    pub merchant: MerchantId,
    pub asset: u32,
    #[serde(with = "minor")]
    pub max_per_charge: Amount,
    #[serde(with = "minor")]
    pub max_per_period: Amount,
    pub period: AllowancePeriod,
    pub created_ns: u64,
    pub revoked_ns: Option<u64>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChargeKind {
    Charge,
    Tip,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayeePart {
    pub merchant: MerchantId,
    pub bps: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
}

/// A charge (or tip) and its receipt: what was bought, the split as booked.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChargeRecord {
    pub id: ChargeId,
    pub kind: ChargeKind,
    pub merchant: MerchantId,
    pub customer: CustomerId,
    pub asset: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
    #[serde(with = "minor")]
    pub platform_fee: Amount,
    /// The charging merchant's net when there are no revenue shares.
    #[serde(with = "minor")]
    pub merchant_net: Amount,
    pub payees: Vec<PayeePart>,
    #[serde(with = "minor")]
    pub rounding: Amount,
    pub description: String,
    pub resource_id: Option<String>,
    pub message: Option<String>,
    /// The allowance that consented, if one did (otherwise the customer confirmed).
    pub allowance: Option<AllowanceId>,
    /// Waiting for the customer's confirmation (no money has moved).
    pub requires_confirmation: bool,
    pub created_ns: u64,
    /// Refund ids, in order.
    pub refunds: Vec<RefundId>,
    /// Fingerprint of the creating request, to tell a retry from a reused Idempotency-Key
    /// (`None` without a key: such a request cannot be retried).
    #[serde(default)]
    pub request_hash: Option<[u8; 32]>,
    /// The tab (id, limit) it was charged to; `None` for the wallet.
    #[serde(default)]
    pub tab: Option<(TabId, u128)>,
    /// How much of it chargebacks took back (see `routes/disputes.rs`).
    #[serde(default, with = "minor")]
    pub disputed: Amount,
    /// Which attempt at booking it (its chain's ids derive from this): a confirmation after a
    /// refusal (say the wallet was short, then topped up) is a new attempt, since the ledger
    /// answers a retried id with its first answer.
    #[serde(default)]
    pub attempt: u64,
}

impl ChargeRecord {
    /// The account the customer paid from (and refunds go back to).
    pub fn source(&self) -> farthing_products::accounts::LedgerAccount {
        match self.tab {
            Some((tab, limit)) => farthing_products::accounts::LedgerAccount::Tab { tab, limit },
            None => farthing_products::accounts::LedgerAccount::Wallet {
                customer: self.customer,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TabPeriod {
    Day,
    Week,
    Month,
}

/// A customer's post-pay tab (carrier billing): charges accrue up to `limit` and are settled as
/// one card charge at `threshold` or at the end of each period.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TabRecord {
    pub id: TabId,
    pub customer: CustomerId,
    pub asset: u32,
    #[serde(with = "minor")]
    pub limit: Amount,
    #[serde(with = "minor")]
    pub threshold: Amount,
    pub period: TabPeriod,
    pub payment_method: String,
    /// Charges are refused while a settlement has failed and not yet been paid.
    pub frozen: bool,
    pub frozen_reason: Option<String>,
    /// Failed attempts of the current settlement.
    pub failed_attempts: u32,
    /// Settlements paid so far; the next one's ledger ids derive from this.
    pub settled: u64,
    pub created_ns: u64,
}

impl TabRecord {
    pub fn account(&self) -> farthing_products::accounts::LedgerAccount {
        farthing_products::accounts::LedgerAccount::Tab {
            tab: self.id,
            limit: self.limit.0,
        }
    }
}

/// How a tab settlement's card charge ended. Stored and shown as its snake_case name.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettlementStatus {
    /// The card was charged: the tab is paid.
    Succeeded,
    /// The card was declined: the tab stays owed (and frozen).
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettlementRecord {
    pub id: SettlementId,
    pub tab: TabId,
    /// Which settlement of the tab (0, 1, ...) this attempt was for.
    pub number: u64,
    #[serde(with = "minor")]
    pub amount: Amount,
    #[serde(with = "minor")]
    pub processor_fee: Amount,
    pub status: SettlementStatus,
    pub failure_code: Option<String>,
    pub trigger: farthing_products::rules::tab::SettlementTrigger,
    pub created_ns: u64,
}

/// Work due at a time; the scheduler runs it, then reschedules or deletes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobRecord {
    pub id: u128,
    pub due_ns: u64,
    pub kind: JobKind,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Settle the tab's balance at the end of its period.
    TabPeriodEnd { tab: TabId },
    /// Try a failed settlement again.
    TabRetry { tab: TabId },
    /// Pay the merchant out on its schedule.
    Payout { merchant: MerchantId },
    /// Give the reserve one payout held back to the merchant's earnings (a rolling reserve).
    ReserveRelease { payout: PayoutId },
    /// Ask the rail again about a pending payout (or finish one a crash interrupted).
    PayoutRail { payout: PayoutId },
    /// Release or capture what an escrow hold still holds at its expiry.
    HoldExpiry { hold: HoldId },
    /// Capture (goal met) or release (not met) an all-or-nothing campaign's contributions.
    CampaignEnd { campaign: CampaignId },
    /// Charge a subscription's next period (or retry it, or end it).
    SubscriptionRenewal { subscription: SubscriptionId },
    /// After a charge on a tab with a settlement threshold: settle it if it reached it.
    TabThreshold { tab: TabId },
    /// After a charge of a customer with auto top-up on in `asset`: top up if the wallet is low.
    AutoTopup { customer: CustomerId, asset: u32 },
    /// After a charge that paid a merchant with a payout threshold in `asset`: pay out if its
    /// earnings reached it.
    ThresholdPayout { merchant: MerchantId, asset: u32 },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundRecord {
    pub id: RefundId,
    pub charge: ChargeId,
    /// Position among the charge's refunds (its ledger chain is derived from it).
    pub index: u64,
    #[serde(with = "minor")]
    pub amount: Amount,
    #[serde(with = "minor")]
    pub platform_fee_returned: Amount,
    /// The offset of the first transfer of its chain (legs of zero are left out).
    pub first_leg: u64,
    pub created_ns: u64,
    /// With an Idempotency-Key: the fingerprint of the request (the id derives from the key).
    #[serde(default)]
    pub request_hash: Option<[u8; 32]>,
}

/// How a top-up's card charge ended. Stored and shown as its snake_case name.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TopupStatus {
    /// The card was charged and the wallet credited.
    Succeeded,
    /// The card was declined: nothing moved.
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopupRecord {
    pub id: TopupId,
    pub customer: CustomerId,
    pub asset: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
    #[serde(with = "minor")]
    pub processor_fee: Amount,
    pub payment_method: String,
    pub status: TopupStatus,
    pub processor_charge_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub automatic: bool,
    pub created_ns: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayoutSchedule {
    Manual,
    Daily,
    Weekly,
    Monthly,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeePlanRecord {
    pub percent_bps: u32,
    #[serde(with = "minor")]
    pub fixed: Amount,
    pub minimum: Option<String>,
    pub maximum: Option<String>,
    pub rounding: RoundingRule,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MerchantSettings {
    pub merchant: MerchantId,
    /// Per asset id.
    pub fee_plans: Vec<(u32, FeePlanRecord)>,
    pub bank_account: Option<String>,
    pub payout_asset: Option<u32>,
    #[serde(with = "minor")]
    pub payout_threshold: Amount,
    pub payout_schedule: PayoutSchedule,
    pub reserve_bps: u32,
    /// Days each payout's reserve is held before it returns to the earnings.
    #[serde(default = "default_reserve_days")]
    pub reserve_days: u32,
}

/// A rolling reserve's default hold: 90 days, the usual card chargeback window.
pub const RESERVE_DAYS_DEFAULT: u32 = 90;

fn default_reserve_days() -> u32 {
    RESERVE_DAYS_DEFAULT
}

impl MerchantSettings {
    pub fn new(merchant: MerchantId) -> MerchantSettings {
        MerchantSettings {
            merchant,
            fee_plans: Vec::new(),
            bank_account: None,
            payout_asset: None,
            payout_threshold: Amount::ZERO,
            payout_schedule: PayoutSchedule::Manual,
            reserve_bps: 0,
            reserve_days: RESERVE_DAYS_DEFAULT,
        }
    }

    pub fn fee_plan(&self, asset: u32) -> FeePlan {
        self.fee_plans
            .iter()
            .find(|(a, _)| *a == asset)
            .map(|(_, p)| FeePlan {
                percent_bps: p.percent_bps,
                fixed: p.fixed,
                minimum: p
                    .minimum
                    .as_ref()
                    .and_then(|m| m.parse().ok())
                    .map(farthing_ledger::Amount),
                maximum: p
                    .maximum
                    .as_ref()
                    .and_then(|m| m.parse().ok())
                    .map(farthing_ledger::Amount),
                rounding: p.rounding,
            })
            .unwrap_or(FeePlan::FREE)
    }
}

/// Where a payout stands. Stored and shown as its snake_case name.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    /// The money has left the earnings; the rail has not yet confirmed the transfer.
    Pending,
    /// The rail sent it.
    Paid,
    /// The rail refused it: the money (and any reserve held with it) is back in the earnings.
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayoutRecord {
    pub id: PayoutId,
    pub merchant: MerchantId,
    pub asset: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
    pub bank_account: String,
    pub status: PayoutStatus,
    pub rail_payout_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub trigger: farthing_products::rules::payout::PayoutTrigger,
    pub created_ns: u64,
    /// With an Idempotency-Key: the fingerprint of the request (the id derives from the key).
    #[serde(default)]
    pub request_hash: Option<[u8; 32]>,
    /// What the payout's chain took from the earnings for the merchant's chargeback debt
    /// before sending `amount` (0 for payouts made before debts were netted).
    #[serde(default, with = "minor")]
    pub debt_recovered: Amount,
    /// How often the rail has been asked about it (sent, then its status asked while it is
    /// pending): the backoff of the next ask derives from it.
    #[serde(default)]
    pub rail_asks: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statuses were strings before they were enums: each must store and read back as the
    /// very same word, so records written by earlier builds still read and the API's JSON
    /// does not change.
    #[test]
    fn statuses_keep_the_words_records_and_the_api_always_used() {
        fn check<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
            status: T,
            word: &str,
        ) {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), status);
        }
        check(TopupStatus::Succeeded, "succeeded");
        check(TopupStatus::Failed, "failed");
        check(SettlementStatus::Succeeded, "succeeded");
        check(SettlementStatus::Failed, "failed");
        check(SubscriptionStatus::Trialing, "trialing");
        check(SubscriptionStatus::Active, "active");
        check(SubscriptionStatus::PastDue, "past_due");
        check(SubscriptionStatus::Paused, "paused");
        check(SubscriptionStatus::Canceled, "canceled");
        check(PayoutStatus::Pending, "pending");
        check(PayoutStatus::Paid, "paid");
        check(PayoutStatus::Failed, "failed");
        // A word no build ever wrote is refused, not guessed.
        assert!(serde_json::from_str::<PayoutStatus>("\"sent\"").is_err());
    }
}
