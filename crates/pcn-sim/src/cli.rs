//! Command-line entry for `farthing pcn-sim`.

/// Flags of `farthing pcn-sim`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("pcn-sim is not built yet")
}
