//! Prefixed string ids: `acct_…`, `tr_…`, `mer_…`, `key_…`. The part after the prefix is the
//! ledger's 128-bit id in lower-case base32 (26 characters), so ids sort and compare as the
//! ledger's do and carry no separate mapping.

use std::sync::LazyLock;

use data_encoding::{Encoding, Specification};

/// RFC 4648 base32 without padding, in lower case: ids are encoded and decoded without case
/// conversions or intermediate strings (they are in every response).
static LOWER_BASE32: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.encoding()
        .expect("32 distinct ASCII symbols are a valid base32 alphabet")
});

/// The kinds of object with a prefixed id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Account,
    Transfer,
    Merchant,
    ApiKey,
    Customer,
    Allowance,
    Charge,
    Refund,
    Topup,
    Payout,
    Tab,
    Settlement,
    Dispute,
    Hold,
    Campaign,
    Contribution,
    Plan,
    Subscription,
    Event,
    WebhookEndpoint,
    WebhookAttempt,
    Offer,
    Entitlement,
    /// A customer as one merchant sees it (see `entitlement::pseudonym`).
    Pseudonym,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Account => "acct_",
            IdKind::Transfer => "tr_",
            IdKind::Merchant => "mer_",
            IdKind::ApiKey => "key_",
            IdKind::Customer => "cus_",
            IdKind::Allowance => "alw_",
            IdKind::Charge => "ch_",
            IdKind::Refund => "re_",
            IdKind::Topup => "tu_",
            IdKind::Payout => "po_",
            IdKind::Tab => "tab_",
            IdKind::Settlement => "stl_",
            IdKind::Dispute => "dp_",
            IdKind::Hold => "hold_",
            IdKind::Campaign => "cmp_",
            IdKind::Contribution => "ctb_",
            IdKind::Plan => "plan_",
            IdKind::Subscription => "sub_",
            IdKind::Event => "evt_",
            IdKind::WebhookEndpoint => "we_",
            IdKind::WebhookAttempt => "whatt_",
            IdKind::Offer => "ofr_",
            IdKind::Entitlement => "ent_",
            IdKind::Pseudonym => "psn_",
        }
    }
}

pub fn encode_id(kind: IdKind, id: u128) -> String {
    let prefix = kind.prefix();
    let mut text = String::with_capacity(prefix.len() + 26);
    text.push_str(prefix);
    LOWER_BASE32.encode_append(&id.to_be_bytes(), &mut text);
    text
}

/// The 128-bit id inside a prefixed id, or `None` if it is not one of `kind`.
pub fn decode_id(kind: IdKind, text: &str) -> Option<u128> {
    let body = text.strip_prefix(kind.prefix())?;
    // The length check also guards `decode_mut`, which panics unless the output is exactly
    // the decoded length of the input (26 symbols: 16 bytes).
    if body.len() != 26
        || !body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return None;
    }
    let mut bytes = [0u8; 16];
    LOWER_BASE32.decode_mut(body.as_bytes(), &mut bytes).ok()?;
    Some(u128::from_be_bytes(bytes))
}

/// An id that knows its kind: records and service signatures say `MerchantId` where they mean
/// a merchant, so a customer's id cannot be passed for one, and the HTTP layer parses a path's
/// text into one before the service sees it. Stored as the bare number
/// (`#[serde(transparent)]`), so records written before these types read back unchanged.
pub trait TypedId: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    const KIND: IdKind;
    /// What the API calls such an object in a 404 (`no such tab`).
    const NOUN: &'static str;

    fn from_raw(raw: u128) -> Self;

    fn raw(self) -> u128;

    /// The prefixed text the API shows.
    fn encode(self) -> String {
        encode_id(Self::KIND, self.raw())
    }

    /// The id in `text`, or `None` if it is not a prefixed id of this kind.
    fn decode(text: &str) -> Option<Self> {
        decode_id(Self::KIND, text).map(Self::from_raw)
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:ident, $noun:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize,
            serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u128);

        impl TypedId for $name {
            const KIND: IdKind = IdKind::$kind;
            const NOUN: &'static str = $noun;

            fn from_raw(raw: u128) -> $name {
                $name(raw)
            }

            fn raw(self) -> u128 {
                self.0
            }
        }

        impl $name {
            /// The prefixed text the API shows.
            pub fn encode(self) -> String {
                TypedId::encode(self)
            }

            /// The id in `text`, or `None` if it is not a prefixed id of this kind.
            pub fn decode(text: &str) -> Option<$name> {
                <$name as TypedId>::decode(text)
            }
        }

        impl From<$name> for u128 {
            fn from(id: $name) -> u128 {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.encode())
            }
        }
    };
}

typed_id!(
    /// A merchant (`mer_…`).
    MerchantId,
    Merchant,
    "merchant"
);
typed_id!(
    /// A customer (`cus_…`).
    CustomerId,
    Customer,
    "customer"
);
typed_id!(
    /// An API key (`key_…`).
    ApiKeyId,
    ApiKey,
    "api key"
);
typed_id!(
    /// An allowance (`alw_…`).
    AllowanceId,
    Allowance,
    "allowance"
);
typed_id!(
    /// A charge or tip (`ch_…`).
    ChargeId,
    Charge,
    "charge"
);
typed_id!(
    /// A refund (`re_…`).
    RefundId,
    Refund,
    "refund"
);
typed_id!(
    /// A top-up (`tu_…`).
    TopupId,
    Topup,
    "top-up"
);
typed_id!(
    /// A payout (`po_…`).
    PayoutId,
    Payout,
    "payout"
);
typed_id!(
    /// A tab (`tab_…`).
    TabId,
    Tab,
    "tab"
);
typed_id!(
    /// A tab settlement attempt (`stl_…`).
    SettlementId,
    Settlement,
    "settlement"
);
typed_id!(
    /// A dispute (`dp_…`).
    DisputeId,
    Dispute,
    "dispute"
);
typed_id!(
    /// An escrow hold (`hold_…`).
    HoldId,
    Hold,
    "hold"
);
typed_id!(
    /// A campaign (`cmp_…`).
    CampaignId,
    Campaign,
    "campaign"
);
typed_id!(
    /// A contribution to a campaign (`ctb_…`).
    ContributionId,
    Contribution,
    "contribution"
);
typed_id!(
    /// A subscription plan (`plan_…`).
    PlanId,
    Plan,
    "plan"
);
typed_id!(
    /// A subscription (`sub_…`).
    SubscriptionId,
    Subscription,
    "subscription"
);
typed_id!(
    /// An offer: a merchant's declared price for a resource (`ofr_…`).
    OfferId,
    Offer,
    "offer"
);
typed_id!(
    /// What a purchase granted (`ent_…`).
    EntitlementId,
    Entitlement,
    "entitlement"
);
typed_id!(
    /// A webhook endpoint (`we_…`).
    WebhookEndpointId,
    WebhookEndpoint,
    "webhook endpoint"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_ids_encode_with_their_kind_and_store_as_the_bare_number() {
        let merchant = MerchantId(42);
        assert_eq!(merchant.to_string(), encode_id(IdKind::Merchant, 42));
        assert_eq!(MerchantId::decode(&merchant.encode()), Some(merchant));
        assert_eq!(CustomerId::decode(&merchant.encode()), None);
        assert_eq!(serde_json::to_string(&CustomerId(7)).unwrap(), "7");
        assert_eq!(
            serde_json::from_str::<CustomerId>("7").unwrap(),
            CustomerId(7)
        );
    }

    #[test]
    fn ids_round_trip_and_reject_foreign_prefixes() {
        for id in [1u128, 42, u128::MAX - 1] {
            let text = encode_id(IdKind::Transfer, id);
            assert!(text.starts_with("tr_") && text.len() == 29);
            assert_eq!(decode_id(IdKind::Transfer, &text), Some(id));
            assert_eq!(decode_id(IdKind::Account, &text), None);
        }
        assert_eq!(decode_id(IdKind::Account, "acct_short"), None);
        assert_eq!(
            decode_id(IdKind::Account, "acct_AAAAAAAAAAAAAAAAAAAAAAAAAA"),
            None
        );
    }

    #[test]
    fn ids_are_rfc4648_base32_in_lower_case_as_issued_before() {
        use data_encoding::BASE32_NOPAD;
        let mut id = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        for _ in 0..1000 {
            let standard = BASE32_NOPAD.encode(&id.to_be_bytes()).to_ascii_lowercase();
            assert_eq!(encode_id(IdKind::Charge, id), format!("ch_{standard}"));
            assert_eq!(
                decode_id(IdKind::Charge, &format!("ch_{standard}")),
                Some(id)
            );
            id = id
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        // 26 symbols carry 130 bits: the last symbol's two spare bits must be zero, so each
        // id has exactly one spelling.
        let text = encode_id(IdKind::Charge, 0);
        assert_eq!(text, "ch_aaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(
            decode_id(IdKind::Charge, "ch_aaaaaaaaaaaaaaaaaaaaaaaaab"),
            None
        );
        assert_eq!(
            decode_id(IdKind::Charge, "ch_aaaaaaaaaaaaaaaaaaaaaaaaae"),
            Some(1)
        );
        assert_eq!(
            decode_id(IdKind::Charge, "ch_aaaaaaaaaaaaaaaaaaaaaaaa1a"),
            None
        );
        // Wrong lengths are refused, not a panic in the decoder.
        assert_eq!(
            decode_id(IdKind::Charge, "ch_aaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            None
        );
        assert_eq!(decode_id(IdKind::Charge, "ch_"), None);
    }
}
