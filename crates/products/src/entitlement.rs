//! Entitlements, as pure rules: what an offer grants ([`Access`]), when a grant is live, the
//! per-merchant customer pseudonym ([`pseudonym`]), and the entitlement token — an ed25519
//! signed compact JWS (RFC 7515/7519, `alg: EdDSA`, RFC 8037) that a publisher verifies with
//! any standard JWT library against the public keys farthing publishes as a JWK Set ([`jwk`]).
//!
//! The token is built here with `ed25519-dalek` and URL-safe base64 without padding rather than
//! through a JWT crate: it is three base64 parts and one signature, and owning the few lines
//! keeps the accepted algorithms to exactly one (`EdDSA`) with no `none` or HMAC confusion.
//! Times and keys come in as arguments: nothing here reads a clock or draws a random number.

use crate::ids::{CustomerId, MerchantId};
use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The longest `duration` an offer may grant: ten years, in seconds.
pub const DURATION_SECONDS_MAX: u64 = 10 * 366 * 24 * 3600;
/// The most views an offer may grant.
pub const VIEWS_MAX: u32 = 1_000_000;
/// The longest a token lives, in seconds: a publisher asks for a fresh one (a purchase of what
/// the customer holds already charges nothing) after a day. A signing key stays published this
/// long after it is rotated out, so every token it signed can still be checked until it expires.
pub const TOKEN_LIFETIME_S: u64 = 24 * 3600;
/// The longest token [`verify`] reads, in bytes (a real one is about 600).
pub const TOKEN_BYTES_MAX: usize = 4096;

/// What a purchase grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Access {
    /// For good.
    Forever,
    /// For `seconds` from the purchase.
    Duration { seconds: u64 },
    /// For `count` views, each counted by `POST /v1/entitlements/verify`.
    Views { count: u32 },
}

/// Why an access policy is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("access.seconds must be 1 to {DURATION_SECONDS_MAX}")]
    Seconds,
    #[error("access.count must be 1 to {VIEWS_MAX}")]
    Count,
}

impl AccessError {
    /// The request field at fault.
    pub fn param(self) -> &'static str {
        match self {
            AccessError::Seconds => "access.seconds",
            AccessError::Count => "access.count",
        }
    }
}

impl Access {
    /// Checks the policy's limits.
    pub fn validate(self) -> Result<Access, AccessError> {
        match self {
            Access::Duration { seconds } if seconds == 0 || seconds > DURATION_SECONDS_MAX => {
                Err(AccessError::Seconds)
            }
            Access::Views { count } if count == 0 || count > VIEWS_MAX => Err(AccessError::Count),
            _ => Ok(self),
        }
    }

    /// When a grant bought at `purchased_s` ends (Unix seconds); `None` if time never ends it.
    pub fn expires_s(self, purchased_s: u64) -> Option<u64> {
        match self {
            Access::Duration { seconds } => Some(purchased_s.saturating_add(seconds)),
            Access::Forever | Access::Views { .. } => None,
        }
    }

    /// The views a grant starts with; `None` if views do not count.
    pub fn views(self) -> Option<u32> {
        match self {
            Access::Views { count } => Some(count),
            Access::Forever | Access::Duration { .. } => None,
        }
    }
}

/// Whether a grant is live at `now_s`: not past its expiry, and with a view left when views
/// count (`views_used` of the policy's count).
pub fn is_live(access: Access, expires_s: Option<u64>, views_used: u32, now_s: u64) -> bool {
    let in_time = expires_s.is_none_or(|end| now_s < end);
    let has_views = access.views().is_none_or(|count| views_used < count);
    in_time && has_views
}

/// When a token issued at `issued_s` for a grant ending at `grant_expires_s` expires: a day
/// later at most ([`TOKEN_LIFETIME_S`]), never after the grant.
pub fn token_expiry(issued_s: u64, grant_expires_s: Option<u64>) -> u64 {
    let longest = issued_s.saturating_add(TOKEN_LIFETIME_S);
    grant_expires_s.map_or(longest, |end| end.min(longest))
}

/// The customer as one merchant sees it: the first 128 bits of HMAC-SHA256 under the
/// instance's pseudonym secret of (merchant, customer). Stable for a pair, different for
/// every merchant, so two merchants comparing tokens cannot tell they share a reader, and
/// without the secret nobody can tell which customer it is.
pub fn pseudonym(secret: &[u8; 32], merchant: MerchantId, customer: CustomerId) -> u128 {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(b"farthing pseudonym v1");
    mac.update(&merchant.0.to_le_bytes());
    mac.update(&customer.0.to_le_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// The claims of an entitlement token. `sub` is the customer's pseudonym (`psn_…`), `aud`
/// the merchant (`mer_…`); `entitlement` names the grant (`ent_…`) whose views
/// `POST /v1/entitlements/verify` counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub resource: String,
    pub access: Access,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub entitlement: String,
}

/// The JWS protected header.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    kid: String,
}

/// The one algorithm tokens are signed with and the only one [`verify`] accepts.
pub const ALGORITHM: &str = "EdDSA";

/// A signing key and its key id.
pub struct TokenKey {
    pub kid: String,
    pub key: SigningKey,
}

impl TokenKey {
    /// The key made from a 32-byte ed25519 seed.
    pub fn from_seed(kid: String, seed: &[u8; 32]) -> TokenKey {
        TokenKey {
            kid,
            key: SigningKey::from_bytes(seed),
        }
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

/// `claims` as a compact JWS signed by `key`: `header.payload.signature`.
pub fn sign(claims: &Claims, key: &TokenKey) -> String {
    let header = Header {
        alg: ALGORITHM.into(),
        typ: Some("JWT".into()),
        kid: key.kid.clone(),
    };
    // Serializing these plain structs cannot fail: strings, numbers and an enum of them.
    let header = serde_json::to_vec(&header).expect("a header serializes");
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    let mut token = String::with_capacity(512);
    token.push_str(&BASE64URL_NOPAD.encode(&header));
    token.push('.');
    token.push_str(&BASE64URL_NOPAD.encode(&payload));
    let signature = key.key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&BASE64URL_NOPAD.encode(&signature.to_bytes()));
    token
}

/// Why a token is refused; `code()` is the API's error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("the token is not a compact JWS this server issues")]
    Malformed,
    #[error("the token's algorithm is not EdDSA")]
    Algorithm,
    #[error("the token names a key this server does not publish")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued for another merchant")]
    WrongAudience,
    #[error("the token is for another resource")]
    WrongResource,
}

impl TokenRefusal {
    pub fn code(self) -> &'static str {
        match self {
            TokenRefusal::Malformed => "token_malformed",
            TokenRefusal::Algorithm => "token_algorithm",
            TokenRefusal::UnknownKey => "token_unknown_key",
            TokenRefusal::BadSignature => "token_signature_invalid",
            TokenRefusal::Expired => "token_expired",
            TokenRefusal::WrongAudience => "token_wrong_audience",
            TokenRefusal::WrongResource => "token_wrong_resource",
        }
    }

    /// The request field at fault.
    pub fn param(self) -> &'static str {
        match self {
            TokenRefusal::WrongResource => "resource",
            _ => "token",
        }
    }
}

/// What a verifier expects of a token.
pub struct Expected<'a> {
    /// The merchant (`mer_…`) the token must be for.
    pub audience: &'a str,
    /// The resource it must be for, when the verifier names one.
    pub resource: Option<&'a str>,
    /// Unix seconds now: a token is good while `now_s < exp`.
    pub now_s: u64,
}

/// The claims of `token` once it is an EdDSA compact JWS signed by the key that `keys` gives
/// for its `kid`, unexpired and for the expected audience and resource. The signature is
/// checked before anything in the payload is believed.
pub fn verify(
    token: &str,
    keys: impl Fn(&str) -> Option<VerifyingKey>,
    expected: &Expected<'_>,
) -> Result<Claims, TokenRefusal> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(TokenRefusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRefusal::Malformed);
    };
    let header: Header = decode_json(header)?;
    if header.alg != ALGORITHM {
        return Err(TokenRefusal::Algorithm);
    }
    let key = keys(&header.kid).ok_or(TokenRefusal::UnknownKey)?;
    let signature = BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or(TokenRefusal::Malformed)?;
    let signed = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
    // Strict: refuses the malleable and small-order forms plain `verify` lets through.
    key.verify_strict(signed.as_bytes(), &signature)
        .map_err(|_| TokenRefusal::BadSignature)?;
    let claims: Claims = decode_json(payload)?;
    if expected.now_s >= claims.exp {
        return Err(TokenRefusal::Expired);
    }
    if claims.aud != expected.audience {
        return Err(TokenRefusal::WrongAudience);
    }
    if expected.resource.is_some_and(|r| r != claims.resource) {
        return Err(TokenRefusal::WrongResource);
    }
    Ok(claims)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenRefusal> {
    let bytes = BASE64URL_NOPAD
        .decode(part.as_bytes())
        .map_err(|_| TokenRefusal::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenRefusal::Malformed)
}

/// A public key as a JWK (RFC 8037: `kty: OKP`, `crv: Ed25519`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `EdDSA`.
    pub alg: String,
}

/// The JWK of a verifying key.
pub fn jwk(kid: &str, key: &VerifyingKey) -> Jwk {
    Jwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        x: BASE64URL_NOPAD.encode(key.as_bytes()),
        kid: kid.into(),
        use_: "sig".into(),
        alg: ALGORITHM.into(),
    }
}

/// The key id of a public key: the first 16 bytes of its SHA-256, base64url (22 characters),
/// so a kid names one key and can be recomputed from it.
pub fn key_id(key: &VerifyingKey) -> String {
    use sha2::Digest;
    let digest = Sha256::digest(key.as_bytes());
    BASE64URL_NOPAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> TokenKey {
        let public = SigningKey::from_bytes(&[seed; 32]).verifying_key();
        TokenKey::from_seed(key_id(&public), &[seed; 32])
    }

    fn claims() -> Claims {
        Claims {
            iss: "http://127.0.0.1:8080".into(),
            sub: "psn_x".into(),
            aud: "mer_a".into(),
            resource: "article-1".into(),
            access: Access::Views { count: 3 },
            exp: 2_000,
            iat: 1_000,
            jti: "tok_1".into(),
            entitlement: "ent_1".into(),
        }
    }

    fn expected(now_s: u64) -> Expected<'static> {
        Expected {
            audience: "mer_a",
            resource: Some("article-1"),
            now_s,
        }
    }

    /// Verifies `token` against `signer`'s public key only.
    fn check(
        token: &str,
        signer: &TokenKey,
        expected: &Expected<'_>,
    ) -> Result<Claims, TokenRefusal> {
        let (kid, public) = (signer.kid.clone(), signer.verifying_key());
        verify(token, |k| (k == kid).then_some(public), expected)
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let k = key(1);
        let token = sign(&claims(), &k);
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(check(&token, &k, &expected(1_999)), Ok(claims()));
        let header: serde_json::Value = serde_json::from_slice(
            &BASE64URL_NOPAD
                .decode(token.split('.').next().unwrap().as_bytes())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], k.kid.as_str());
        assert_eq!(header["typ"], "JWT");
    }

    #[test]
    fn every_refusal_names_its_reason() {
        let (k, other) = (key(1), key(2));
        let token = sign(&claims(), &k);
        // Expired at exp exactly.
        assert_eq!(
            check(&token, &k, &expected(2_000)),
            Err(TokenRefusal::Expired)
        );
        let wrong_audience = Expected {
            audience: "mer_b",
            ..expected(1_000)
        };
        assert_eq!(
            check(&token, &k, &wrong_audience),
            Err(TokenRefusal::WrongAudience)
        );
        let other_resource = Expected {
            resource: Some("article-2"),
            ..expected(1_000)
        };
        assert_eq!(
            check(&token, &k, &other_resource),
            Err(TokenRefusal::WrongResource)
        );
        // Re-signed by a key that claims the published kid: the signature does not verify.
        let forged = sign(
            &claims(),
            &TokenKey {
                kid: k.kid.clone(),
                key: other.key.clone(),
            },
        );
        assert_eq!(
            check(&forged, &k, &expected(1_000)),
            Err(TokenRefusal::BadSignature)
        );
        // Signed by a key that is not published.
        assert_eq!(
            check(&sign(&claims(), &other), &k, &expected(1_000)),
            Err(TokenRefusal::UnknownKey)
        );
        // A payload changed after signing (a longer access) fails the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut changed = claims();
        changed.access = Access::Forever;
        let payload = BASE64URL_NOPAD.encode(&serde_json::to_vec(&changed).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            check(&tampered, &k, &expected(1_000)),
            Err(TokenRefusal::BadSignature)
        );
        // `alg: none` and HMAC are refused before any key is looked at.
        for alg in ["none", "HS256"] {
            let header = BASE64URL_NOPAD
                .encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, k.kid).as_bytes());
            let token = format!("{header}.{}.{}", parts[1], parts[2]);
            assert_eq!(
                check(&token, &k, &expected(1_000)),
                Err(TokenRefusal::Algorithm)
            );
        }
        for malformed in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.??.**",
            &"a".repeat(TOKEN_BYTES_MAX + 1),
        ] {
            assert_eq!(
                check(malformed, &k, &expected(1_000)),
                Err(TokenRefusal::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn pseudonyms_are_stable_per_merchant_and_differ_across_merchants() {
        let secret = [7u8; 32];
        let a = pseudonym(&secret, MerchantId(1), CustomerId(100));
        assert_eq!(
            a,
            pseudonym(&secret, MerchantId(1), CustomerId(100)),
            "stable"
        );
        assert_ne!(
            a,
            pseudonym(&secret, MerchantId(2), CustomerId(100)),
            "another merchant sees another name"
        );
        assert_ne!(
            a,
            pseudonym(&secret, MerchantId(1), CustomerId(101)),
            "another customer"
        );
        assert_ne!(
            a,
            pseudonym(&[8u8; 32], MerchantId(1), CustomerId(100)),
            "another instance's secret"
        );
        // Pinned (computed independently with Python's hmac): a change of the derivation
        // would rename every reader for every publisher.
        assert_eq!(a, 0xb7c8_1128_6e79_9ca7_c3aa_28a7_dc73_8f60);
    }

    #[test]
    fn liveness_follows_time_and_views() {
        let views = Access::Views { count: 2 };
        assert!(is_live(views, None, 1, 0));
        assert!(!is_live(views, None, 2, 0), "no view left");
        let day = Access::Duration { seconds: 86_400 };
        let end = day.expires_s(1_000);
        assert_eq!(end, Some(87_400));
        assert!(is_live(day, end, 0, 87_399));
        assert!(!is_live(day, end, 0, 87_400));
        assert!(is_live(Access::Forever, None, 0, u64::MAX));
        assert_eq!(token_expiry(1_000, None), 1_000 + TOKEN_LIFETIME_S);
        assert_eq!(
            token_expiry(1_000, Some(2_000)),
            2_000,
            "never past the grant"
        );
    }

    #[test]
    fn access_limits_are_checked() {
        assert_eq!(
            Access::Duration { seconds: 0 }.validate(),
            Err(AccessError::Seconds)
        );
        assert_eq!(
            Access::Duration {
                seconds: DURATION_SECONDS_MAX + 1
            }
            .validate(),
            Err(AccessError::Seconds)
        );
        assert_eq!(
            Access::Views { count: 0 }.validate(),
            Err(AccessError::Count)
        );
        assert_eq!(
            Access::Views {
                count: VIEWS_MAX + 1
            }
            .validate(),
            Err(AccessError::Count)
        );
        assert!(Access::Forever.validate().is_ok());
        let json = serde_json::to_string(&Access::Views { count: 3 }).unwrap();
        assert_eq!(json, r#"{"kind":"views","count":3}"#);
        assert!(serde_json::from_str::<Access>(r#"{"kind":"views","count":3,"x":1}"#).is_err());
    }

    #[test]
    fn the_jwk_carries_the_public_key_and_its_id() {
        let k = key(3);
        let jwk = jwk(&k.kid, &k.verifying_key());
        assert_eq!(
            (jwk.kty.as_str(), jwk.crv.as_str(), jwk.alg.as_str()),
            ("OKP", "Ed25519", "EdDSA")
        );
        assert_eq!(
            BASE64URL_NOPAD.decode(jwk.x.as_bytes()).unwrap(),
            k.verifying_key().as_bytes()
        );
        assert_eq!(jwk.kid.len(), 22);
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["use"], "sig");
    }
}
