//! How a crowdfunding campaign ends.
//!
//! An all-or-nothing campaign's contributions are ledger holds on the backers' wallets. At the
//! deadline every held contribution is captured (posted, then split by the creator's fee plan
//! from the campaign's pot) if the pledged total reached the goal, and released otherwise.
//! Pledged counts held and captured contributions alike, so a rerun after a partial run (some
//! captured, some still held) decides the same. A keep-what-you-raise contribution is paid at
//! once, so its campaign has nothing held at the deadline; it only announces the outcome.
//!
//! The outcome announced, and the campaign's status, compare what was raised (every funded
//! contribution, released ones included: what the backers pledged) with the goal.

use crate::ids::{CampaignId, CustomerId, MerchantId};
use std::collections::BTreeSet;

use farthing_ledger::{Amount, Timestamp};

use super::charge::{price, ChargeSplit, PriceError};
use super::{LedgerAccount, Leg};
use crate::fees::FeePlan;

/// How a campaign treats contributions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CampaignMode {
    /// Held until the deadline; captured only if the goal is reached.
    AllOrNothing,
    /// Paid at once.
    KeepWhatYouRaise,
}

/// A contribution's status, read from the ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ContributionStatus {
    Held,
    Captured,
    Released,
    /// Keep-what-you-raise: paid at once.
    Paid,
    /// Never funded: not counted.
    Failed,
}

impl ContributionStatus {
    pub const fn code(self) -> &'static str {
        match self {
            ContributionStatus::Held => "held",
            ContributionStatus::Captured => "captured",
            ContributionStatus::Released => "released",
            ContributionStatus::Paid => "paid",
            ContributionStatus::Failed => "failed",
        }
    }

    /// In the campaign's raised total (its funding transfer is in the ledger).
    pub fn counted(self) -> bool {
        self != ContributionStatus::Failed
    }
}

/// One contribution as the campaign's end sees it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Contribution {
    pub id: u128,
    pub customer: CustomerId,
    pub amount: Amount,
    pub status: ContributionStatus,
}

/// What was raised (funded contributions, released ones included, saturating) and how many
/// distinct backers.
///
/// Used by `service/campaigns.rs: view`.
pub fn progress(contributions: &[Contribution]) -> (Amount, u64) {
    let counted = contributions.iter().filter(|c| c.status.counted());
    let raised = counted
        .clone()
        .fold(0u128, |sum, c| sum.saturating_add(c.amount.0));
    let backers: BTreeSet<CustomerId> = counted.map(|c| c.customer).collect();
    (Amount(raised), backers.len() as u64)
}

/// A campaign's status.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CampaignStatus {
    Active,
    Succeeded,
    Failed,
}

impl CampaignStatus {
    pub const fn code(self) -> &'static str {
        match self {
            CampaignStatus::Active => "active",
            CampaignStatus::Succeeded => "succeeded",
            CampaignStatus::Failed => "failed",
        }
    }
}

/// `active` before the deadline unless closed, then whether what was raised reached the goal.
///
/// Used by `service/campaigns.rs: view`.
pub fn status(
    now: Timestamp,
    deadline: Timestamp,
    ended: bool,
    raised: Amount,
    goal: Amount,
) -> CampaignStatus {
    if now < deadline && !ended {
        CampaignStatus::Active
    } else if raised >= goal {
        CampaignStatus::Succeeded
    } else {
        CampaignStatus::Failed
    }
}

/// Why a contribution is refused. Code `campaign_ended`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[error("the campaign's deadline has passed")]
pub struct CampaignEnded;

impl CampaignEnded {
    pub const fn code(&self) -> &'static str {
        "campaign_ended"
    }
}

/// Whether a contribution at `now` is taken: not once the campaign is closed or its deadline
/// has come (a closed campaign refuses even if the clock reads before its deadline).
///
/// Used by `service/campaigns.rs: contribute`, under the campaign's lock.
pub fn accepts_contributions(
    now: Timestamp,
    deadline: Timestamp,
    ended: bool,
) -> Result<(), CampaignEnded> {
    if ended || now >= deadline {
        return Err(CampaignEnded);
    }
    Ok(())
}

/// What the deadline does with one held contribution.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum EndStep {
    /// Post the hold, then split it from the pot (see [`EndStep::split_legs`]).
    Capture {
        contribution: u128,
        amount: Amount,
        split: ChargeSplit,
    },
    /// Void the hold: the money stays the backer's.
    Release { contribution: u128 },
}

impl EndStep {
    /// A capture's split (see [`pot_split_legs`]); empty for a release.
    pub fn split_legs(&self, campaign: u128) -> Vec<Leg> {
        match self {
            EndStep::Capture { split, .. } => pot_split_legs(campaign, split).to_vec(),
            EndStep::Release { .. } => Vec::new(),
        }
    }
}

/// A contribution's split, positional: from the campaign's pot to the creator's earnings
/// (net), the platform's revenue (fee) and rounding; they sum to the contribution. Booked when
/// an all-or-nothing contribution is captured at the deadline, and at once for a
/// keep-what-you-raise contribution (after its funding transfer).
pub fn pot_split_legs(campaign: u128, split: &ChargeSplit) -> [Leg; 3] {
    super::charge::split_legs(
        LedgerAccount::Campaign {
            campaign: CampaignId(campaign),
        },
        split,
    )
}

/// The deadline's plan.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CampaignEnd {
    /// Held and captured contributions reached the goal: held ones are captured.
    pub capture: bool,
    /// One step per held contribution, in the order given.
    pub steps: Vec<EndStep>,
    /// The outcome announced (`campaign.succeeded` or `campaign.failed`): what was raised
    /// reached the goal.
    pub goal_reached: bool,
}

/// Plans the deadline of a campaign with `goal`, whose creator `merchant` prices captures by
/// its fee `plan`.
///
/// Used by `service/campaigns.rs: end` (the campaign's deadline job).
pub fn plan_end(
    goal: Amount,
    (plan, merchant): (&FeePlan, u128),
    contributions: &[Contribution],
) -> Result<CampaignEnd, PriceError> {
    let pledged = contributions
        .iter()
        .filter(|c| {
            matches!(
                c.status,
                ContributionStatus::Held | ContributionStatus::Captured
            )
        })
        .fold(0u128, |sum, c| sum.saturating_add(c.amount.0));
    let capture = pledged >= goal.0;
    let mut steps = Vec::new();
    for c in contributions
        .iter()
        .filter(|c| c.status == ContributionStatus::Held)
    {
        steps.push(if capture {
            EndStep::Capture {
                contribution: c.id,
                amount: c.amount,
                split: price(c.amount, plan, MerchantId(merchant), &[])?,
            }
        } else {
            EndStep::Release { contribution: c.id }
        });
    }
    // The outcome reads the contributions as they stand after the steps: a capture stays
    // counted, a release too (released pledges count as raised).
    let (raised, _) = progress(contributions);
    Ok(CampaignEnd {
        capture,
        steps,
        goal_reached: raised >= goal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::RoundingRule;
    use proptest::prelude::*;

    const CREATOR: u128 = 4;
    const PLAN: FeePlan = FeePlan {
        percent_bps: 500,
        fixed: Amount::ZERO,
        minimum: None,
        maximum: None,
        rounding: RoundingRule::HalfEven,
    };

    fn contribution(id: u128, amount: u128, status: ContributionStatus) -> Contribution {
        Contribution {
            id,
            customer: CustomerId(id % 3),
            amount: Amount(amount),
            status,
        }
    }

    /// Plans the end and names each step ("capture 1", "release 2") and the outcome.
    fn check(goal: u128, contributions: &[Contribution], expected: (&[&str], bool)) {
        let end = plan_end(Amount(goal), (&PLAN, CREATOR), contributions).unwrap();
        let steps: Vec<String> = end
            .steps
            .iter()
            .map(|s| match s {
                EndStep::Capture { contribution, .. } => format!("capture {contribution}"),
                EndStep::Release { contribution } => format!("release {contribution}"),
            })
            .collect();
        let expected_steps: Vec<String> = expected.0.iter().map(|s| s.to_string()).collect();
        assert_eq!((steps, end.goal_reached), (expected_steps, expected.1));
    }

    #[test]
    fn all_or_nothing_captures_at_the_goal_and_releases_below_it() {
        use ContributionStatus::*;
        let list = [
            contribution(1, 60, Held),
            contribution(2, 40, Held),
            contribution(3, 500, Failed),
        ];
        check(100, &list, (&["capture 1", "capture 2"], true));
        check(101, &list, (&["release 1", "release 2"], false));
    }

    #[test]
    fn a_rerun_after_a_partial_run_decides_the_same() {
        use ContributionStatus::*;
        // The first run captured 1 and crashed before 2.
        check(
            100,
            &[contribution(1, 60, Captured), contribution(2, 40, Held)],
            (&["capture 2"], true),
        );
        // The first run released 1 and crashed before 2: still short.
        let end = plan_end(
            Amount(100),
            (&PLAN, CREATOR),
            &[contribution(1, 60, Released), contribution(2, 40, Held)],
        )
        .unwrap();
        assert!(!end.capture);
        assert_eq!(end.steps, [EndStep::Release { contribution: 2 }]);
    }

    #[test]
    fn keep_what_you_raise_has_nothing_to_settle_but_announces_the_outcome() {
        use ContributionStatus::*;
        let end = plan_end(
            Amount(100),
            (&PLAN, CREATOR),
            &[contribution(1, 70, Paid), contribution(2, 30, Paid)],
        )
        .unwrap();
        assert!(end.steps.is_empty());
        assert!(end.goal_reached);
    }

    #[test]
    fn a_capture_pays_the_creator_less_the_fee_from_the_pot() {
        let end = plan_end(
            Amount(1),
            (&PLAN, CREATOR),
            &[contribution(1, 1_000, ContributionStatus::Held)],
        )
        .unwrap();
        let legs = end.steps[0].split_legs(9);
        let got: Vec<(LedgerAccount, u128)> = legs.iter().map(|l| (l.credit, l.amount.0)).collect();
        assert_eq!(
            got,
            [
                (
                    LedgerAccount::Earnings {
                        merchant: MerchantId(CREATOR)
                    },
                    950
                ),
                (LedgerAccount::PlatformRevenue, 50),
                (LedgerAccount::Rounding, 0),
            ]
        );
        assert!(legs.iter().all(|l| l.debit
            == LedgerAccount::Campaign {
                campaign: CampaignId(9)
            }));
    }

    #[test]
    fn status_progress_and_contributions_follow_the_deadline() {
        let (deadline, goal) = (Timestamp(100), Amount(10));
        assert_eq!(
            status(Timestamp(99), deadline, false, Amount(0), goal),
            CampaignStatus::Active
        );
        assert_eq!(
            status(Timestamp(99), deadline, true, Amount(10), goal),
            CampaignStatus::Succeeded
        );
        assert_eq!(
            status(Timestamp(100), deadline, false, Amount(9), goal),
            CampaignStatus::Failed
        );
        assert_eq!(
            accepts_contributions(Timestamp(99), deadline, false),
            Ok(())
        );
        assert_eq!(
            accepts_contributions(Timestamp(99), deadline, true).map_err(|e| e.code()),
            Err("campaign_ended")
        );
        assert!(accepts_contributions(Timestamp(100), deadline, false).is_err());
        use ContributionStatus::*;
        let list = [
            contribution(1, 5, Held),
            contribution(4, 5, Released),
            contribution(2, 5, Failed),
        ];
        // Customers 1 and 1 (4 % 3): one backer; the failed one is not counted.
        assert_eq!(progress(&list), (Amount(10), 1));
    }

    proptest! {
        /// Every held contribution gets exactly one step, all of one kind; captures split
        /// exactly the contribution.
        #[test]
        fn every_held_contribution_is_settled_once(
            goal in 1u128..10_000,
            list in prop::collection::vec((1u128..5_000, 0usize..5), 0..12),
        ) {
            let statuses = [
                ContributionStatus::Held, ContributionStatus::Captured,
                ContributionStatus::Released, ContributionStatus::Paid,
                ContributionStatus::Failed,
            ];
            let list: Vec<Contribution> = list
                .iter()
                .enumerate()
                .map(|(i, (amount, s))| contribution(i as u128, *amount, statuses[*s]))
                .collect();
            let end = plan_end(Amount(goal), (&PLAN, CREATOR), &list).unwrap();
            let held = list.iter().filter(|c| c.status == ContributionStatus::Held).count();
            prop_assert_eq!(end.steps.len(), held);
            for step in &end.steps {
                match step {
                    EndStep::Capture { amount, .. } => {
                        prop_assert!(end.capture);
                        prop_assert_eq!(
                            crate::rules::legs_total(&step.split_legs(1)), Some(*amount)
                        );
                    }
                    EndStep::Release { .. } => prop_assert!(!end.capture),
                }
            }
        }
    }
}
