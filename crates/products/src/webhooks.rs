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
//!
//! Also here, as pure decisions the delivery worker acts on: the retry schedule
//! ([`delivery_backoff`]) and which addresses a delivery may connect to ([`AddressPolicy`], the
//! guard against server-side request forgery).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// The retry schedule of one delivery: at once, then after about 5 s, 30 s, 3 min, 18 min,
/// 1.8 h, 10 h and 10 h (each ±20% jitter): 8 attempts over about 22 hours.
pub fn delivery_backoff() -> crate::schedule::Backoff {
    crate::schedule::Backoff::new(5, 6, 36_000, 8).expect("constant backoff parameters are valid")
}

/// What kind of address an IP address is, for the SSRF guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// Reachable on the internet: always allowed.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT), fc00::/7.
    Private,
    /// 169.254/16 (where cloud metadata services live), fe80::/10.
    LinkLocal,
    /// Unspecified, multicast, broadcast, documentation, benchmarking and reserved ranges:
    /// never a webhook receiver, never allowed.
    Reserved,
}

impl AddressClass {
    pub fn name(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// The class of `ip`. IPv4 addresses inside IPv6 (mapped `::ffff:a.b.c.d`, and NAT64
/// `64:ff9b::a.b.c.d`) are classed as the IPv4 address they carry.
pub fn address_class(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (127, _, _) => AddressClass::Loopback,
        (10, _, _) | (192, 168, _) => AddressClass::Private,
        (172, 16..=31, _) | (100, 64..=127, _) => AddressClass::Private,
        (169, 254, _) => AddressClass::LinkLocal,
        (0, _, _) | (224..=255, _, _) => AddressClass::Reserved,
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (198, 18..=19, _) => {
            AddressClass::Reserved
        }
        _ => AddressClass::Public,
    }
}

fn v6_class(ip: Ipv6Addr) -> AddressClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4);
    }
    let segments = ip.segments();
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return v4_class(Ipv4Addr::new(a, b, c, d));
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    match segments[0] {
        s if s & 0xfe00 == 0xfc00 => AddressClass::Private,
        s if s & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        s if s & 0xff00 == 0xff00 => AddressClass::Reserved,
        0x2001 if segments[1] == 0x0db8 => AddressClass::Reserved,
        // Everything else below 2000::/3 (unspecified, IPv4-compatible, discard, ...) is no
        // public unicast address.
        s if s & 0xe000 != 0x2000 => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

/// Which non-public addresses deliveries may go to. By default only public ones: a merchant
/// must not be able to make the server call into the operator's own network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub loopback: bool,
    pub private: bool,
    pub link_local: bool,
}

/// Why an address policy's text does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown address class {0:?}: use loopback, private or link-local (comma-separated)")]
pub struct AddressPolicyError(pub String);

impl AddressPolicy {
    /// Parses a comma-separated list of the classes to allow: `loopback`, `private`,
    /// `link-local` (empty: none).
    pub fn parse(text: &str) -> Result<AddressPolicy, AddressPolicyError> {
        let mut policy = AddressPolicy::default();
        for class in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match class {
                "loopback" => policy.loopback = true,
                "private" => policy.private = true,
                "link-local" => policy.link_local = true,
                other => return Err(AddressPolicyError(other.to_string())),
            }
        }
        Ok(policy)
    }

    /// Whether a delivery may connect to `ip`; if not, the class that forbids it.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressClass> {
        let class = address_class(ip);
        let allowed = match class {
            AddressClass::Public => true,
            AddressClass::Loopback => self.loopback,
            AddressClass::Private => self.private,
            AddressClass::LinkLocal => self.link_local,
            AddressClass::Reserved => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(class)
        }
    }
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

    #[test]
    fn addresses_are_classed_for_the_ssrf_guard() {
        let cases = [
            ("93.184.215.14", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("172.32.0.1", AddressClass::Public),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::Private),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("0.0.0.0", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Reserved),
            ("224.0.0.1", AddressClass::Reserved),
            ("192.0.2.7", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Reserved),
            ("::1", AddressClass::Loopback),
            ("::", AddressClass::Reserved),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("64:ff9b::10.0.0.1", AddressClass::Private),
            ("fd00::1", AddressClass::Private),
            ("fe80::1", AddressClass::LinkLocal),
            ("ff02::1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Reserved),
            ("2606:4700::1111", AddressClass::Public),
        ];
        for (text, class) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(address_class(ip), class, "{text}");
        }
    }

    #[test]
    fn the_policy_allows_only_what_the_operator_lists() {
        let strict = AddressPolicy::default();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let private: IpAddr = "10.0.0.1".parse().unwrap();
        let public: IpAddr = "8.8.8.8".parse().unwrap();
        let reserved: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(strict.check(public), Ok(()));
        assert_eq!(strict.check(loopback), Err(AddressClass::Loopback));
        assert_eq!(strict.check(private), Err(AddressClass::Private));
        let tests = AddressPolicy::parse("loopback").unwrap();
        assert_eq!(tests.check(loopback), Ok(()));
        assert_eq!(tests.check(private), Err(AddressClass::Private));
        let all = AddressPolicy::parse("loopback, private,link-local").unwrap();
        assert_eq!(all.check(private), Ok(()));
        assert_eq!(all.check(reserved), Err(AddressClass::Reserved), "never");
        assert_eq!(AddressPolicy::parse(""), Ok(AddressPolicy::default()));
        assert_eq!(
            AddressPolicy::parse("loopback,intranet"),
            Err(AddressPolicyError("intranet".into()))
        );
    }

    #[test]
    fn deliveries_retry_for_about_a_day() {
        let backoff = delivery_backoff();
        let total_s: u64 = (0..backoff.max_attempts())
            .map(|k| backoff.delay(k).unwrap().as_secs())
            .sum();
        assert!((20 * 3600..=26 * 3600).contains(&total_s), "{total_s} s");
        assert_eq!(backoff.delay(backoff.max_attempts()), None);
    }
}
