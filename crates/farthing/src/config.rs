//! Configuration of `farthing serve`: flags, then environment variables, then an optional TOML
//! config file, then defaults.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use serde::Deserialize;

use farthing_service::state::Limits;

/// Flags of `farthing serve`. Each also reads an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "FARTHING_LISTEN")]
    pub listen: Option<String>,
    /// Data directory (ledger log, snapshots, metadata) [default: ./farthing-data].
    #[arg(long, env = "FARTHING_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// An operator API key (`fk_…`) accepted in addition to stored keys. Without it, the first
    /// start creates an operator key and prints it once.
    #[arg(long, env = "FARTHING_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// TOML file with any of: listen, data_dir, rate_limit_per_second, request_body_bytes_max,
    /// request_timeout_ms, idempotency_retention_hours, log_json, tls_cert, tls_key,
    /// webhook_allow_addresses, issuer.
    #[arg(long, env = "FARTHING_CONFIG")]
    pub config: Option<PathBuf>,
    /// Requests per second allowed per API key [default: 100000].
    #[arg(long, env = "FARTHING_RATE_LIMIT_PER_SECOND")]
    pub rate_limit_per_second: Option<u32>,
    /// Largest request body in bytes [default: 8388608].
    #[arg(long, env = "FARTHING_REQUEST_BODY_BYTES_MAX")]
    pub request_body_bytes_max: Option<usize>,
    /// Request timeout in milliseconds [default: 10000].
    #[arg(long, env = "FARTHING_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// How long stored Idempotency-Key responses of non-transfer requests are kept, in hours
    /// (at least 24) [default: 24]. Transfer keys live in the ledger and never expire.
    #[arg(long, env = "FARTHING_IDEMPOTENCY_RETENTION_HOURS")]
    pub idempotency_retention_hours: Option<u64>,
    /// Log as JSON lines instead of text. The environment variable takes 1/0, true/false.
    #[arg(long, env = "FARTHING_LOG_JSON", value_parser = BoolishValueParser::new())]
    pub log_json: bool,
    /// Let the operator move the products' clock forward (`POST /v1/test_clock/advance`), so
    /// tests of periods and retries move time instead of sleeping. Never in production. The
    /// environment variable takes 1/0, true/false.
    #[arg(long, env = "FARTHING_TEST_CLOCK", value_parser = BoolishValueParser::new())]
    pub test_clock: bool,
    /// Non-public addresses webhook deliveries may reach, comma-separated: `loopback`,
    /// `private`, `link-local` (default: none, public addresses only).
    #[arg(long, env = "FARTHING_WEBHOOK_ALLOW_ADDRESSES")]
    pub webhook_allow_addresses: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "FARTHING_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, env = "FARTHING_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The `iss` of entitlement tokens: this instance's public URL (`https://pay.example`)
    /// [default: http(s)://<the address it listens on>].
    #[arg(long, env = "FARTHING_ISSUER")]
    pub issuer: Option<String>,
}

/// Stored Idempotency-Key responses live at least a day (what clients retrying are promised),
/// at most ten years.
pub const IDEMPOTENCY_RETENTION_HOURS_MIN: u64 = 24;
pub const IDEMPOTENCY_RETENTION_HOURS_MAX: u64 = 24 * 3650;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    rate_limit_per_second: Option<u32>,
    request_body_bytes_max: Option<usize>,
    request_timeout_ms: Option<u64>,
    idempotency_retention_hours: Option<u64>,
    log_json: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    webhook_allow_addresses: Option<String>,
    issuer: Option<String>,
}

/// The longest issuer, in bytes (it is in every entitlement token).
pub const ISSUER_BYTES_MAX: usize = 200;

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub admin_key: Option<String>,
    pub rate_limit_per_second: u32,
    pub request_body_bytes_max: usize,
    pub request_timeout_ms: u64,
    pub idempotency_retention_hours: u64,
    pub log_json: bool,
    pub test_clock: bool,
    /// Certificate and key paths when serving HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub webhook_addresses: farthing_products::webhooks::AddressPolicy,
    /// The `iss` of entitlement tokens, when configured.
    pub issuer: Option<String>,
}

impl ServeConfig {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<ServeConfig> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        if let Some(key) = &args.admin_key {
            anyhow::ensure!(
                key.starts_with(farthing_service::keys::KEY_PREFIX) && key.len() >= 24,
                "FARTHING_ADMIN_KEY must start with `fk_` and be at least 24 characters"
            );
        }
        Ok(ServeConfig {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./farthing-data")),
            admin_key: args.admin_key,
            rate_limit_per_second: args
                .rate_limit_per_second
                .or(file.rate_limit_per_second)
                .unwrap_or(100_000),
            request_body_bytes_max: args
                .request_body_bytes_max
                .or(file.request_body_bytes_max)
                .unwrap_or(8 << 20),
            request_timeout_ms: args
                .request_timeout_ms
                .or(file.request_timeout_ms)
                .unwrap_or(10_000),
            idempotency_retention_hours: {
                let hours = args
                    .idempotency_retention_hours
                    .or(file.idempotency_retention_hours)
                    .unwrap_or(IDEMPOTENCY_RETENTION_HOURS_MIN);
                anyhow::ensure!(
                    (IDEMPOTENCY_RETENTION_HOURS_MIN..=IDEMPOTENCY_RETENTION_HOURS_MAX)
                        .contains(&hours),
                    "idempotency_retention_hours must be {IDEMPOTENCY_RETENTION_HOURS_MIN} to {IDEMPOTENCY_RETENTION_HOURS_MAX}, not {hours}"
                );
                hours
            },
            log_json: args.log_json || file.log_json.unwrap_or(false),
            test_clock: args.test_clock,
            tls: match (
                args.tls_cert.or(file.tls_cert),
                args.tls_key.or(file.tls_key),
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => anyhow::bail!("TLS needs both a certificate (tls_cert) and a key (tls_key)"),
            },
            webhook_addresses: farthing_products::webhooks::AddressPolicy::parse(
                args.webhook_allow_addresses
                    .or(file.webhook_allow_addresses)
                    .as_deref()
                    .unwrap_or(""),
            )
            .map_err(|e| anyhow::anyhow!("webhook_allow_addresses: {e}"))?,
            issuer: match args.issuer.or(file.issuer) {
                Some(issuer) => {
                    anyhow::ensure!(
                        !issuer.is_empty()
                            && issuer.len() <= ISSUER_BYTES_MAX
                            && !issuer.chars().any(char::is_control),
                        "issuer must be 1 to {ISSUER_BYTES_MAX} bytes without control characters"
                    );
                    Some(issuer)
                }
                None => None,
            },
        })
    }

    pub fn limits(&self) -> Limits {
        Limits {
            request_body_bytes_max: self.request_body_bytes_max,
            request_timeout_ms: self.request_timeout_ms,
            rate_limit_per_second: self.rate_limit_per_second,
            page_limit_max: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ServeArgs;

    /// Regression: `FARTHING_LOG_JSON=1` was refused ("invalid value '1' for '--log-json'"):
    /// clap's own parser of a flag's environment variable knows only `true` and `false`. Each
    /// on/off flag's parser (the one clap applies to its environment variable) is checked here
    /// through a copy of the flag that takes a value on the command line.
    #[test]
    fn on_off_flags_take_1_0_true_false_from_the_environment() {
        let serve = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        let flags: Vec<&clap::Arg> = serve
            .get_arguments()
            .filter(|arg| matches!(arg.get_action(), clap::ArgAction::SetTrue))
            .collect();
        assert!(flags.len() >= 2, "log_json and test_clock at least");
        for flag in flags {
            let (id, long) = (flag.get_id().as_str(), flag.get_long().unwrap_or_default());
            assert!(
                flag.get_env().is_some(),
                "--{long} reads no environment variable"
            );
            let with_value = flag
                .clone()
                .action(clap::ArgAction::Set)
                .num_args(1)
                .required(false);
            let command = clap::Command::new("serve").arg(with_value);
            for (text, value) in [("1", true), ("true", true), ("0", false), ("false", false)] {
                let parsed = command
                    .clone()
                    .try_get_matches_from(["serve", &format!("--{long}={text}")])
                    .map_err(|e| e.to_string())
                    .map(|matches| matches.get_one::<bool>(id).copied());
                assert_eq!(parsed, Ok(Some(value)), "--{long} from {text:?}");
            }
        }
    }
}
