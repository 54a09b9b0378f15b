//! `farthing bench tokens`: how many entitlement tokens one core signs, then verifies, per
//! second — the work behind every purchase's token and every `POST /v1/entitlements/verify`
//! (and what a publisher's server spends checking one). One thread, no I/O: the token rules
//! of `farthing_products::entitlement` with the claims a purchase issues.

use std::time::{Duration, Instant};

use anyhow::ensure;
use farthing_products::entitlement::{self, Access, Claims, Expected, TokenKey};
use serde::Serialize;

/// Flags of `farthing bench tokens`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenBenchArgs {
    /// Seconds of signing, then as many of verifying.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `farthing bench tokens --json` prints.
#[derive(Debug, Serialize)]
pub struct TokenBenchReport {
    pub threads: u32,
    pub seconds: f64,
    pub tokens_signed: u64,
    pub tokens_signed_per_second: f64,
    pub tokens_verified: u64,
    pub tokens_verified_per_second: f64,
    /// The length of one token, in bytes.
    pub token_bytes: usize,
    pub machine: String,
}

/// Claims as a purchase issues them (ids of the real lengths).
fn claims(n: u64) -> Claims {
    Claims {
        iss: "https://pay.example".into(),
        sub: format!("psn_{:026}", n),
        aud: "mer_aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        resource: "article-1".into(),
        access: Access::Duration { seconds: 86_400 },
        exp: 2_000_000_000,
        iat: 1_900_000_000,
        jti: format!("tok_{:026}", n),
        entitlement: "ent_aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
    }
}

pub fn run(args: &TokenBenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.seconds > 0.0 && args.seconds <= 3600.0,
        "--seconds must be above 0 and at most 3600"
    );
    let seed: [u8; 32] = rand::random();
    let probe = TokenKey::from_seed(String::new(), &seed);
    let key = TokenKey::from_seed(entitlement::key_id(&probe.verifying_key()), &seed);
    let public = key.verifying_key();
    let phase = Duration::from_secs_f64(args.seconds);

    // Signing: a fresh jti per token, as purchases make them.
    let mut tokens = Vec::new();
    let started = Instant::now();
    let mut signed = 0u64;
    while started.elapsed() < phase {
        for _ in 0..64 {
            let token = entitlement::sign(&claims(signed), &key);
            if tokens.len() < 1024 {
                tokens.push(token);
            }
            signed += 1;
        }
    }
    let sign_seconds = started.elapsed().as_secs_f64();
    ensure!(!tokens.is_empty(), "no token was signed");

    // Verifying what was signed, round robin.
    let expected = Expected {
        audience: "mer_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        resource: Some("article-1"),
        now_s: 1_950_000_000,
    };
    let started = Instant::now();
    let mut verified = 0u64;
    while started.elapsed() < phase {
        for token in tokens.iter().take(64) {
            let claims = entitlement::verify(token, |_| Some(public), &expected)
                .map_err(|e| anyhow::anyhow!("a token just signed was refused: {e}"))?;
            std::hint::black_box(claims);
            verified += 1;
        }
        let step = 64.min(tokens.len());
        tokens.rotate_left(step);
    }
    let verify_seconds = started.elapsed().as_secs_f64();
    let report = TokenBenchReport {
        threads: 1,
        seconds: args.seconds,
        tokens_signed: signed,
        tokens_signed_per_second: signed as f64 / sign_seconds,
        tokens_verified: verified,
        tokens_verified_per_second: verified as f64 / verify_seconds,
        token_bytes: tokens.first().map_or(0, String::len),
        machine: crate::bench::machine_description(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("entitlement tokens, one thread, {} s each", args.seconds);
        println!(
            "  signed     {:>12.0} /s  ({} tokens)",
            report.tokens_signed_per_second, report.tokens_signed
        );
        println!(
            "  verified   {:>12.0} /s  ({} tokens)",
            report.tokens_verified_per_second, report.tokens_verified
        );
        println!("  token      {:>12} bytes", report.token_bytes);
        println!("  machine    {}", report.machine);
    }
    Ok(())
}
