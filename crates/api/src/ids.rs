//! Prefixed string ids: `acct_…`, `tr_…`, `mer_…`, `key_…`. The part after the prefix is the
//! ledger's 128-bit id in lower-case base32 (26 characters), so ids sort and compare as the
//! ledger's do and carry no separate mapping.

use data_encoding::BASE32_NOPAD;

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
        }
    }
}

pub fn encode_id(kind: IdKind, id: u128) -> String {
    let text = BASE32_NOPAD.encode(&id.to_be_bytes()).to_ascii_lowercase();
    format!("{}{text}", kind.prefix())
}

/// The 128-bit id inside a prefixed id, or `None` if it is not one of `kind`.
pub fn decode_id(kind: IdKind, text: &str) -> Option<u128> {
    let body = text.strip_prefix(kind.prefix())?;
    if body.len() != 26
        || !body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return None;
    }
    let bytes = BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .ok()?;
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    Some(u128::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
