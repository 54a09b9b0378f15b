//! `farthing bench vouchers`: how fast a merchant checks off-ledger payments, in-process, on
//! one core (this thread), with `farthing-vouchers`.
//!
//! Three figures, each measured for `--seconds`:
//! - PayWord payments accepted per second: a chain of `--chain-length` words is revealed in
//!   order, one hash each; when it ends, a fresh verifier starts on the same commitment.
//! - Signed vouchers accepted per second, each verified alone: `--channels` channels, each with
//!   its own key, take turns, every voucher raising its channel's amount.
//! - The same, verified `--batch-size` channels' vouchers at a time with one batch
//!   verification.
//!
//! Proofs are made before the clock starts; what is timed is only the merchant's side
//! (`accept`, or `check`, `verify_batch` and `commit`). Every proof must be accepted, or the
//! benchmark fails: a refusal would be a bug, and a fast refusal no figure.

use std::time::{Duration, Instant};

use anyhow::ensure;
use farthing_ledger::{Amount, AssetId, Timestamp};
use farthing_vouchers::{
    verify_batch, ChannelId, ChannelKind, ChannelTerms, CustomerKey, MerchantId, PayWord,
    PayWordChain, PayWordPayment, SigningKey, Voucher, VoucherVerifier, BATCH_VOUCHERS_MAX,
    CHAIN_LENGTH_MAX,
};
use serde::Serialize;

/// Flags of `farthing bench vouchers`.
#[derive(Debug, Clone, clap::Args)]
pub struct VouchersBenchArgs {
    /// Seconds to measure each of the three figures.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Words in the PayWord chain (at most 16777216); a fresh verifier starts over at its end.
    #[arg(long, default_value_t = 1 << 20)]
    pub chain_length: u32,
    /// Channels, each with its own key, whose vouchers the signature figures take in turn.
    #[arg(long, default_value_t = 1024)]
    pub channels: usize,
    /// Vouchers signed per channel before the clock starts; the verifiers start over after the
    /// last.
    #[arg(long, default_value_t = 8)]
    pub vouchers_per_channel: u64,
    /// Vouchers (of as many channels) per batch verification (at most 1024, and at most
    /// --channels).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `farthing bench vouchers --json` prints.
#[derive(Debug, Serialize)]
pub struct VouchersReport {
    pub seconds_each: f64,
    pub machine: String,
    /// Whether the CPU has the SHA extensions, which `sha2` then uses.
    pub sha_ni: bool,
    pub payword_chain_length: u32,
    pub payword_payments: u64,
    pub payword_payments_per_second: f64,
    /// The target for PayWord payments per second on one core.
    pub payword_target_per_second: f64,
    pub channels: usize,
    pub voucher_single: u64,
    pub voucher_single_per_second: f64,
    pub voucher_batch_size: usize,
    pub voucher_batched: u64,
    pub voucher_batch_per_second: f64,
}

const PAYWORD_TARGET_PER_SECOND: f64 = 5_000_000.0;
/// Every payment is made at this instant, well before the channels expire.
const NOW: Timestamp = Timestamp(1);
const EXPIRES: Timestamp = Timestamp(u64::MAX);

pub fn run(args: &VouchersBenchArgs) -> anyhow::Result<()> {
    validate(args)?;
    let report = measure(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn validate(args: &VouchersBenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 3600.0,
        "--seconds must be above 0 and at most 3600"
    );
    ensure!(
        (1..=CHAIN_LENGTH_MAX).contains(&args.chain_length),
        "--chain-length must be between 1 and {CHAIN_LENGTH_MAX}"
    );
    ensure!(
        (1..=65_536).contains(&args.channels),
        "--channels must be between 1 and 65536"
    );
    ensure!(
        (1..=1024).contains(&args.vouchers_per_channel),
        "--vouchers-per-channel must be between 1 and 1024"
    );
    ensure!(
        (1..=BATCH_VOUCHERS_MAX.min(args.channels)).contains(&args.batch_size),
        "--batch-size must be between 1 and {} (and at most --channels)",
        BATCH_VOUCHERS_MAX
    );
    Ok(())
}

pub fn measure(args: &VouchersBenchArgs) -> anyhow::Result<VouchersReport> {
    let budget = Duration::from_secs_f64(args.seconds);
    let (payword_payments, payword_seconds) = payword(args.chain_length, budget)?;
    let channels = Channels::sign(args.channels, args.vouchers_per_channel)?;
    let (voucher_single, single_seconds) = channels.single(budget)?;
    let (voucher_batched, batch_seconds) = channels.batched(args.batch_size, budget)?;
    Ok(VouchersReport {
        seconds_each: args.seconds,
        machine: crate::bench::machine_description(),
        sha_ni: sha_ni(),
        payword_chain_length: args.chain_length,
        payword_payments,
        payword_payments_per_second: payword_payments as f64 / payword_seconds,
        payword_target_per_second: PAYWORD_TARGET_PER_SECOND,
        channels: args.channels,
        voucher_single,
        voucher_single_per_second: voucher_single as f64 / single_seconds,
        voucher_batch_size: args.batch_size,
        voucher_batched,
        voucher_batch_per_second: voucher_batched as f64 / batch_seconds,
    })
}

fn sha_ni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A customer key for channel `i` (deterministic: a benchmark draws no randomness it needs to
/// explain).
fn signing_key(i: u64) -> SigningKey {
    let mut seed = [0x5a; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn terms(
    id: u64,
    key: &SigningKey,
    deposit: Amount,
    kind: ChannelKind,
) -> anyhow::Result<ChannelTerms> {
    let customer = CustomerKey::from_bytes(key.verifying_key().as_bytes())?;
    Ok(ChannelTerms::new(
        ChannelId(u128::from(id)),
        customer,
        MerchantId(1),
        AssetId(1),
        deposit,
        EXPIRES,
        kind,
    )?)
}

/// PayWord payments accepted in `budget`, and the seconds they took.
fn payword(length: u32, budget: Duration) -> anyhow::Result<(u64, f64)> {
    let key = signing_key(0);
    let unit_price = Amount(1);
    let terms = terms(
        1,
        &key,
        Amount(u128::from(length)),
        ChannelKind::PayWord { unit_price },
    )?;
    let chain = PayWordChain::generate(terms.id(), PayWord([7; 32]), length)?;
    let commitment = chain.commit(&terms, &key);
    let payments: Vec<PayWordPayment> = (1..=length).filter_map(|k| chain.payment(k)).collect();
    drop(chain);
    // Checking the clock costs far more than a hash: look at it every so many payments.
    const CLOCK_EVERY: usize = 4096;
    let mut accepted = 0u64;
    let mut elapsed = Duration::ZERO;
    while elapsed < budget {
        let mut verifier = commitment.verify(&terms)?;
        let start = Instant::now();
        for slice in payments.chunks(CLOCK_EVERY) {
            for payment in slice {
                let ok = verifier.accept(payment, NOW);
                ensure!(
                    ok.is_ok(),
                    "PayWord payment {} refused: {ok:?}",
                    payment.position
                );
            }
            accepted += slice.len() as u64;
            if elapsed + start.elapsed() >= budget {
                break;
            }
        }
        elapsed += start.elapsed();
    }
    Ok((accepted, elapsed.as_secs_f64()))
}

/// Vouchers for many channels, signed before the clock starts: `vouchers[round][channel]`,
/// round `r` paying `r + 1` in all with nonce `r + 1`.
struct Channels {
    terms: Vec<ChannelTerms>,
    vouchers: Vec<Vec<Voucher>>,
}

impl Channels {
    fn sign(channels: usize, rounds: u64) -> anyhow::Result<Channels> {
        let deposit = Amount(u128::from(rounds));
        let mut terms = Vec::with_capacity(channels);
        let mut keys = Vec::with_capacity(channels);
        for i in 0..channels as u64 {
            let key = signing_key(i + 1);
            terms.push(self::terms(i + 1, &key, deposit, ChannelKind::Vouchers)?);
            keys.push(key);
        }
        let vouchers = (1..=rounds)
            .map(|round| {
                terms
                    .iter()
                    .zip(&keys)
                    .map(|(t, key)| Voucher::sign(t, Amount(u128::from(round)), round, key))
                    .collect()
            })
            .collect();
        Ok(Channels { terms, vouchers })
    }

    fn verifiers(&self) -> anyhow::Result<Vec<VoucherVerifier>> {
        Ok(self
            .terms
            .iter()
            .map(VoucherVerifier::new)
            .collect::<Result<_, _>>()?)
    }

    /// Vouchers accepted one signature at a time in `budget`, and the seconds they took.
    fn single(&self, budget: Duration) -> anyhow::Result<(u64, f64)> {
        let mut accepted = 0u64;
        let mut elapsed = Duration::ZERO;
        'rounds: loop {
            let mut verifiers = self.verifiers()?;
            for round in &self.vouchers {
                let start = Instant::now();
                for (verifier, voucher) in verifiers.iter_mut().zip(round) {
                    let ok = verifier.accept(voucher, NOW);
                    ensure!(ok.is_ok(), "voucher refused: {ok:?}");
                    accepted += 1;
                }
                elapsed += start.elapsed();
                if elapsed >= budget {
                    break 'rounds;
                }
            }
        }
        Ok((accepted, elapsed.as_secs_f64()))
    }

    /// Vouchers accepted `batch` channels at a time (check, one batch verification, commit) in
    /// `budget`, and the seconds they took.
    fn batched(&self, batch: usize, budget: Duration) -> anyhow::Result<(u64, f64)> {
        let mut accepted = 0u64;
        let mut elapsed = Duration::ZERO;
        'rounds: loop {
            let mut verifiers = self.verifiers()?;
            for round in &self.vouchers {
                let start = Instant::now();
                for (verifiers, vouchers) in verifiers.chunks_mut(batch).zip(round.chunks(batch)) {
                    let checked = verifiers
                        .iter()
                        .zip(vouchers)
                        .map(|(verifier, voucher)| verifier.check(voucher, NOW))
                        .collect::<Result<Vec<_>, _>>()?;
                    for (verifier, verified) in verifiers.iter_mut().zip(verify_batch(checked)) {
                        verifier.commit(verified?)?;
                        accepted += 1;
                    }
                }
                elapsed += start.elapsed();
                if elapsed >= budget {
                    break 'rounds;
                }
            }
        }
        Ok((accepted, elapsed.as_secs_f64()))
    }
}

fn print_table(r: &VouchersReport) {
    let row = |label: &str, value: String| println!("  {label:<32} {value}");
    println!("farthing bench vouchers (one core, in-process)");
    row("machine", r.machine.clone());
    row(
        "SHA extensions (SHA-NI)",
        (if r.sha_ni { "yes" } else { "no" }).into(),
    );
    row("seconds per figure", r.seconds_each.to_string());
    row(
        "PayWord payments/s",
        format!(
            "{:.0} ({} payments, chain of {}; target {:.0})",
            r.payword_payments_per_second,
            r.payword_payments,
            r.payword_chain_length,
            r.payword_target_per_second
        ),
    );
    row(
        "signed vouchers/s, single",
        format!(
            "{:.0} ({} vouchers, {} channels)",
            r.voucher_single_per_second, r.voucher_single, r.channels
        ),
    );
    row(
        &format!("signed vouchers/s, batch of {}", r.voucher_batch_size),
        format!(
            "{:.0} ({} vouchers)",
            r.voucher_batch_per_second, r.voucher_batched
        ),
    );
}
