//! The `farthing` binary's commands, as a library so that integration tests can reuse the
//! deterministic workloads. `main.rs` only parses the command line.

pub mod bench;
pub mod bench_http;
pub mod bench_tokens;
pub mod bench_vouchers;
pub mod config;
pub mod crash;
pub mod progress;
pub mod serve;

/// An error and its causes on one line, `error: cause: cause`, each message once. Many errors
/// (redb's, hyper's, some of the standard library's) end their own message with their cause's,
/// which a plain walk of the chain (anyhow's `{:#}`) prints a second time.
pub fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::error_message;

    /// An error whose message already ends with its cause's, as redb's and the engine's did.
    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Repeats {
        path: &'static str,
        source: std::io::Error,
    }

    fn not_a_directory() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotADirectory, "Not a directory")
    }

    #[test]
    fn error_message_names_each_cause_once() {
        let repeats = anyhow::Error::new(Repeats {
            path: "data",
            source: not_a_directory(),
        });
        assert_eq!(error_message(&repeats), "data: Not a directory");
        assert_eq!(
            error_message(&repeats.context("opening the engine")),
            "opening the engine: data: Not a directory"
        );
        let plain = anyhow::Error::new(not_a_directory()).context("cannot open data");
        assert_eq!(error_message(&plain), "cannot open data: Not a directory");
    }
}
