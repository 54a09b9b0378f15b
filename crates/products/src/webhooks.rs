//! Webhook signing per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>, "Signature scheme").
//!
//! A delivery carries three headers:
//! - `webhook-id`: the message id, the same on every retry of one event (receivers dedupe on it);
//! - `webhook-timestamp`: seconds since the Unix epoch when this attempt was signed;
//! - `webhook-signature`: space-separated `v1,<base64>` signatures, one per valid secret (two
//!   while a secret is being rotated), each the standard-base64 HMAC-SHA256, keyed with the
//!   secret's bytes, of `{webhook-id}.{webhook-timestamp}.{body}`.
//!
//! Secrets are shown as `whsec_` followed by the standard base64 of their bytes. Pure: the
//! caller supplies the randomness, the time and the body.

use data_encoding::BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a secret farthing generates (the specification allows 24 to 64).
pub const SECRET_BYTES: usize = 32;
const SECRET_BYTES_MIN: usize = 24;
const SECRET_BYTES_MAX: usize = 64;
/// How far a receiver should accept a timestamp from its own clock (the specification's
/// suggestion: five minutes).
pub const TIMESTAMP_TOLERANCE_S: u64 = 300;

/// A signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// Why a secret's text or a signature does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("a secret starts with whsec_ followed by standard base64")]
    SecretFormat,
    #[error("a secret holds {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes, not {0}")]
    SecretLength(usize),
    #[error("the timestamp is more than {TIMESTAMP_TOLERANCE_S} s from now")]
    TimestampOutOfTolerance,
    #[error("no signature matches")]
    NoMatch,
}

impl WebhookSecret {
    /// A secret from `bytes` (24 to 64 of them; use [`SECRET_BYTES`] random bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<WebhookSecret, WebhookError> {
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&bytes.len()) {
            return Err(WebhookError::SecretLength(bytes.len()));
        }
        Ok(WebhookSecret(bytes.to_vec()))
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<WebhookSecret, WebhookError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(WebhookError::SecretFormat)?;
        let bytes = BASE64
            .decode(encoded.as_bytes())
            .map_err(|_| WebhookError::SecretFormat)?;
        WebhookSecret::from_bytes(&bytes)
    }

    /// `whsec_<base64>`: the form shown to the endpoint's owner, once.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.0))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp_s: u64, body: &[u8]) -> String {
        let mac = self.mac(id, timestamp_s, body).finalize().into_bytes();
        format!("v1,{}", BASE64.encode(&mac))
    }

    /// The HMAC of `{id}.{timestamp}.{body}`, not yet finalized.
    fn mac(&self, id: &str, timestamp_s: u64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC-SHA256 takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_s.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The `webhook-signature` header: one signature per secret (the current one first).
pub fn signature_header(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp_s: u64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp_s, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a delivery as a receiver would: the timestamp within [`TIMESTAMP_TOLERANCE_S`] of
/// `now_s`, and some `v1` signature in `header` made with `secret` (compared in constant
/// time).
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp_s: u64,
    body: &[u8],
    header: &str,
    now_s: u64,
) -> Result<(), WebhookError> {
    if timestamp_s.abs_diff(now_s) > TIMESTAMP_TOLERANCE_S {
        return Err(WebhookError::TimestampOutOfTolerance);
    }
    for candidate in header.split(' ') {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(given) = BASE64.decode(encoded.as_bytes()) else {
            continue;
        };
        if secret
            .mac(id, timestamp_s, body)
            .verify_slice(&given)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(WebhookError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' test suites: this secret,
    /// message and timestamp sign to this value.
    #[test]
    fn matches_the_specifications_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            verify(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                body,
                &signature,
                1614265330
            ),
            Ok(())
        );
    }

    #[test]
    fn rotation_signs_with_both_secrets_and_either_verifies() {
        let old = WebhookSecret::from_bytes(&[1; 32]).unwrap();
        let new = WebhookSecret::from_bytes(&[2; 32]).unwrap();
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 100, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert_eq!(verify(&old, "msg_1", 100, b"{}", &header, 100), Ok(()));
        assert_eq!(verify(&new, "msg_1", 100, b"{}", &header, 100), Ok(()));
        let other = WebhookSecret::from_bytes(&[3; 32]).unwrap();
        assert_eq!(
            verify(&other, "msg_1", 100, b"{}", &header, 100),
            Err(WebhookError::NoMatch)
        );
        // Any change to the id, the timestamp or the body breaks it.
        assert!(verify(&new, "msg_2", 100, b"{}", &header, 100).is_err());
        assert!(verify(&new, "msg_1", 101, b"{}", &header, 101).is_err());
        assert!(verify(&new, "msg_1", 100, b"{ }", &header, 100).is_err());
        assert_eq!(
            verify(
                &new,
                "msg_1",
                100,
                b"{}",
                &header,
                100 + TIMESTAMP_TOLERANCE_S + 1
            ),
            Err(WebhookError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let secret = WebhookSecret::from_bytes(&[7; SECRET_BYTES]).unwrap();
        assert_eq!(WebhookSecret::parse(&secret.to_text()), Ok(secret));
        assert_eq!(
            WebhookSecret::parse("sk_abc"),
            Err(WebhookError::SecretFormat)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_!!!"),
            Err(WebhookError::SecretFormat)
        );
        assert_eq!(
            WebhookSecret::from_bytes(&[0; 8]),
            Err(WebhookError::SecretLength(8))
        );
        assert!(!format!("{:?}", WebhookSecret::from_bytes(&[9; 32]).unwrap()).contains('9'));
    }
}
