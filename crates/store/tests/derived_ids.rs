//! Golden values for every id farthing derives rather than draws: ledger account ids of product
//! accounts, transfer ids from Idempotency-Keys, chain ids of product objects, job ids. Data
//! written by earlier releases names these ids, so a change to any of them (a hash input, a
//! length prefix, a purpose string) would orphan existing wallets and break idempotent replay
//! after an upgrade. If one of these fails, the change is a data migration, not a refactor.
//!
//! Note the two hashers: `derived_id` length-prefixes its parts with u64, the product
//! derivation (`LedgerAccount`, `chain_id`, `funding_transfer_id`) with u32. Both are pinned.

use farthing_ledger::{AccountId, AssetId};
use farthing_products::accounts::LedgerAccount;
use farthing_products::accounts::{chain_id, funding_transfer_id};
use farthing_products::ids::{AllowanceId, CampaignId, TabId};
use farthing_products::ids::{CustomerId, MerchantId};
use farthing_store::util::{derived_id, id_run_start};

const TENANT: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
const OBJECT: u128 = 0x0000_0180_0000_0000_1111_2222_3333_4445;

fn hex(id: u128) -> String {
    format!("{id:032x}")
}

/// Compares `(name, actual)` pairs with the golden list; prints the whole actual list on a
/// mismatch so a deliberate migration can update it in one step.
fn check(actual: &[(String, u128)], golden: &[(&str, &str)]) {
    let actual: Vec<(String, String)> = actual
        .iter()
        .map(|(name, id)| (name.clone(), hex(*id)))
        .collect();
    let expected: Vec<(String, String)> = golden
        .iter()
        .map(|(name, id)| (name.to_string(), id.to_string()))
        .collect();
    if actual != expected {
        let listing: String = actual
            .iter()
            .map(|(name, id)| format!("        (\"{name}\", \"{id}\"),\n"))
            .collect();
        panic!("derived ids changed; the ids now are:\n{listing}");
    }
}

#[test]
fn ids_derived_from_idempotency_keys_are_pinned() {
    let mut actual = Vec::new();
    for purpose in [
        "transfers",
        "accounts",
        "charge",
        "refund",
        "topup",
        "hold",
        "capture",
        "contribution",
        "subscription",
        "payout",
        "dispute",
        "settlement",
        "auto_topup",
        "job",
    ] {
        actual.push((
            format!("derived_id/{purpose}/0"),
            derived_id(TENANT, "order-42", purpose, 0),
        ));
    }
    actual.push((
        "derived_id/transfers/7".into(),
        derived_id(TENANT, "order-42", "transfers", 7),
    ));
    actual.push((
        "id_run_start/order-42".into(),
        id_run_start(TENANT, Some("order-42")),
    ));
    check(&actual, GOLDEN_KEYED);
}

#[test]
fn chain_and_funding_ids_are_pinned() {
    let mut actual = Vec::new();
    for purpose in [
        "charge",
        "refund",
        "topup",
        "hold",
        "capture",
        "release",
        "expire",
        "contribution",
        "payout",
        "payout_return",
        "reserve_release",
        "dispute",
        "settlement",
    ] {
        for index in [0, 3] {
            actual.push((
                format!("chain_id/{purpose}/{index}"),
                chain_id(OBJECT, purpose, index),
            ));
        }
    }
    actual.push((
        "funding_transfer_id".into(),
        funding_transfer_id(AccountId(OBJECT)),
    ));
    check(&actual, GOLDEN_CHAINS);
}

#[test]
fn product_account_ids_are_pinned() {
    let accounts = [
        (
            "wallet",
            LedgerAccount::Wallet {
                customer: CustomerId(OBJECT),
            },
        ),
        (
            "tab",
            LedgerAccount::Tab {
                tab: TabId(OBJECT),
                limit: 5_000_000,
            },
        ),
        (
            "earnings",
            LedgerAccount::Earnings {
                merchant: MerchantId(OBJECT),
            },
        ),
        (
            "merchant_debt",
            LedgerAccount::MerchantDebt {
                merchant: MerchantId(OBJECT),
            },
        ),
        (
            "reserve",
            LedgerAccount::Reserve {
                merchant: MerchantId(OBJECT),
            },
        ),
        ("platform_revenue", LedgerAccount::PlatformRevenue),
        ("rounding", LedgerAccount::Rounding),
        ("processor_clearing", LedgerAccount::ProcessorClearing),
        ("processor_fees", LedgerAccount::ProcessorFees),
        ("dispute_losses", LedgerAccount::DisputeLosses),
        ("payout_clearing", LedgerAccount::PayoutClearing),
        (
            "campaign",
            LedgerAccount::Campaign {
                campaign: CampaignId(OBJECT),
            },
        ),
        ("escrow", LedgerAccount::Escrow),
        ("limit_source", LedgerAccount::LimitSource),
        ("limit_sink", LedgerAccount::LimitSink),
        (
            "allowance_period",
            LedgerAccount::AllowancePeriod {
                allowance: AllowanceId(OBJECT),
                period: 2,
            },
        ),
        (
            "monthly_cap",
            LedgerAccount::MonthlyCap {
                customer: CustomerId(OBJECT),
                month: 24_323,
            },
        ),
    ];
    let mut actual = Vec::new();
    for (name, account) in accounts {
        for asset in [1, 7] {
            actual.push((format!("{name}/asset{asset}"), account.id(AssetId(asset)).0));
        }
    }
    check(&actual, GOLDEN_ACCOUNTS);
}

const GOLDEN_KEYED: &[(&str, &str)] = &[
    ("derived_id/transfers/0", "b9e7436e5612ce7e007a6216c492fa43"),
    ("derived_id/accounts/0", "b7eb56cc726b748dde1c5b1d448eaa29"),
    ("derived_id/charge/0", "2d7d697a7a35a9e21805dab9770fa802"),
    ("derived_id/refund/0", "b8b74707d65f6825a6e87426b2b99519"),
    ("derived_id/topup/0", "97907b416f7c43276ae7f5b4e8542347"),
    ("derived_id/hold/0", "9921e13286d73366d90fa429478e6f43"),
    ("derived_id/capture/0", "c9315fbf6bc280fff6afe37161af50d2"),
    (
        "derived_id/contribution/0",
        "a6e7b77552582a7131daa81d8e8e5a9f",
    ),
    (
        "derived_id/subscription/0",
        "432d7698dcc13923854f7735553c6a0c",
    ),
    ("derived_id/payout/0", "9ed4e3d862d96f3e6bcf87a23b7bc1f0"),
    ("derived_id/dispute/0", "d81b02612fb40c06e97c7ac408bf72e7"),
    (
        "derived_id/settlement/0",
        "ce49fd995fc332b9e1cfdaed7a554adc",
    ),
    (
        "derived_id/auto_topup/0",
        "e292edea8347909c60d2d186cb8f043a",
    ),
    ("derived_id/job/0", "0e067a15c8dc424c325fc67b6c11ddb1"),
    ("derived_id/transfers/7", "bc93f70480c1bce67f05db97c073651e"),
    ("id_run_start/order-42", "5cf3a1b72b09673f003d310b62497d22"),
];
const GOLDEN_CHAINS: &[(&str, &str)] = &[
    ("chain_id/charge/0", "215e7bca4057ce3b593486f20475d6a3"),
    ("chain_id/charge/3", "601bbdb43b4b000e9b98a525565a3cfc"),
    ("chain_id/refund/0", "6ef5cc4ff4c853f6e84cbe9e71dc8dae"),
    ("chain_id/refund/3", "42a5faa7f29b41e9cd88a498df77cb60"),
    ("chain_id/topup/0", "7a849684e3eedcf8b28e268d0ff5d6ba"),
    ("chain_id/topup/3", "7e5d28b76a1ed5ec6a0886d657594b87"),
    ("chain_id/hold/0", "0495ae7aeeb9df03003d7008f2bfa41f"),
    ("chain_id/hold/3", "2536caee74798d26aa7b7049cafa95a9"),
    ("chain_id/capture/0", "189b48fbf039d23a22773471dcc2ddbd"),
    ("chain_id/capture/3", "104f374c5841909f94014bab6f9a99aa"),
    ("chain_id/release/0", "57cf7a72b26e09a70012b38634f8c03f"),
    ("chain_id/release/3", "7e68c494ba72640e18a4d7d9c2f1612d"),
    ("chain_id/expire/0", "0e64bd3ccc853df45c7e40c46ed5d994"),
    ("chain_id/expire/3", "741f3b2e6a0d43dda01d48fd0ec1b8ea"),
    (
        "chain_id/contribution/0",
        "7ee3b45127255e942bca25ed6605c116",
    ),
    (
        "chain_id/contribution/3",
        "2b2c856e266dfcc5b48c32430ec908fc",
    ),
    ("chain_id/payout/0", "721c736aa8346c3031bb15ce86526b06"),
    ("chain_id/payout/3", "4f1cca851e85bd10cf142a63b6d745d2"),
    (
        "chain_id/payout_return/0",
        "2c66d669031395f8c2ffa604f0749492",
    ),
    (
        "chain_id/payout_return/3",
        "5541fee261f39b98e0e03660760e3931",
    ),
    (
        "chain_id/reserve_release/0",
        "1e11cce2c7c8aa88c89018fb3780d189",
    ),
    (
        "chain_id/reserve_release/3",
        "006d9b983edf3cd4699d3e0256dde39e",
    ),
    ("chain_id/dispute/0", "38a8c372c6be5a2458d8505c88d10976"),
    ("chain_id/dispute/3", "51e8b483eedca1890af23234419c527c"),
    ("chain_id/settlement/0", "116986d18198b0e81a160c2d5bec6cfb"),
    ("chain_id/settlement/3", "1d18783e04315309c303111efdbf2749"),
    ("funding_transfer_id", "d001d4664537ebd8cbca029cc9d2d1ac"),
];
const GOLDEN_ACCOUNTS: &[(&str, &str)] = &[
    ("wallet/asset1", "c1768a00f83a1b214fe0c09ef9d75fc0"),
    ("wallet/asset7", "d3a8dd8894030e59a61055970a7738c5"),
    ("tab/asset1", "37c7e1c22a5b206fd005cd61ebf34de7"),
    ("tab/asset7", "ba5a49539aa6eb0bf07519e1e4b87027"),
    ("earnings/asset1", "cfdfe2ef4bb9446b52fb2d09e196eb9f"),
    ("earnings/asset7", "91f5743d8c7b68a75f8783978e959297"),
    ("merchant_debt/asset1", "7f1e227a403186f61f038634c1608430"),
    ("merchant_debt/asset7", "b4fa4e5b177db85b3884de511f2db3b7"),
    ("reserve/asset1", "f0a28eb379241b16f73464f13b9613f5"),
    ("reserve/asset7", "4e12492f6f74e03ae17eedb9d583f6dc"),
    (
        "platform_revenue/asset1",
        "3af3c9e8a932914ce5f9fdb36522214b",
    ),
    (
        "platform_revenue/asset7",
        "a5b1137f954319c04025cde9f5321f14",
    ),
    ("rounding/asset1", "76912949bae4fcc62c7bae92043e255f"),
    ("rounding/asset7", "f7725898c3222b799dd2cd1535ebed6b"),
    (
        "processor_clearing/asset1",
        "529bcd8350450577a69ca1e7f6886874",
    ),
    (
        "processor_clearing/asset7",
        "014d76be00a2e4de4603719a307eacab",
    ),
    ("processor_fees/asset1", "93f3fcddb1fb7c6d50c55971e0423f18"),
    ("processor_fees/asset7", "2e1b546dc038314640f7daa164b4e1e3"),
    ("dispute_losses/asset1", "2c1038e54d0a1510b2abf1a3002fddd1"),
    ("dispute_losses/asset7", "f07d0c54ba037d7b8b4ec680d4ba9306"),
    ("payout_clearing/asset1", "4c0b780e1606fb38b95e4886af71c94b"),
    ("payout_clearing/asset7", "54dfc42679275f41a5faad4b003bfba7"),
    ("campaign/asset1", "5e07600afc4510981ce95bde5984d7e3"),
    ("campaign/asset7", "230617465ebb5f2d0cc5449728521e5a"),
    ("escrow/asset1", "a57674a51715159b32f482c91289fb50"),
    ("escrow/asset7", "a79f9f18f08678d0cec78d602f3ae62d"),
    ("limit_source/asset1", "b4d5156ed9d29ec5b221987376032bf3"),
    ("limit_source/asset7", "e96c0da0fdd8497bc5e06bbb05b0d5bf"),
    ("limit_sink/asset1", "5f687e93cf1a8b3e84a089983b21e88d"),
    ("limit_sink/asset7", "d2dae2de8425951b33a8af2033bed840"),
    (
        "allowance_period/asset1",
        "e6bf3ddd6f6936d8e5d4757bdf967e94",
    ),
    (
        "allowance_period/asset7",
        "ba67f6ce9c20a96fe96f4409b3adc650",
    ),
    ("monthly_cap/asset1", "7789daa6f0f3177ede675838b02cf22c"),
    ("monthly_cap/asset7", "8ede0f926e5b74010f7f2eb0889fa604"),
];
