//! The Spider paper's published numbers, read from a CSV file such as
//! `shared/reference/spider_nsdi20.csv`:
//!
//! ```text
//! # comments
//! topology,channel_sizes,channel_size,scheme,success_ratio_pct,normalized_throughput_pct
//! sf50,equal,800,spider,95.4,87.8
//! ```
//!
//! An empty throughput field means the paper did not report it.

use serde::Serialize;

/// One published data point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PaperPoint {
    pub topology: String,
    pub channel_sizes: String,
    pub channel_size_units: u64,
    pub scheme: String,
    pub success_ratio_pct: f64,
    pub normalized_throughput_pct: Option<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaperError {
    #[error("line {line}: {reason}")]
    Parse { line: usize, reason: String },
}

const HEADER: &str =
    "topology,channel_sizes,channel_size,scheme,success_ratio_pct,normalized_throughput_pct";

/// Parses the CSV text; comment lines start with `#`.
pub fn parse(text: &str) -> Result<Vec<PaperPoint>, PaperError> {
    let mut points = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') || content == HEADER {
            continue;
        }
        let fields: Vec<&str> = content.split(',').map(str::trim).collect();
        if fields.len() != 6 {
            return Err(PaperError::Parse {
                line,
                reason: format!("expected 6 comma-separated fields, found {}", fields.len()),
            });
        }
        let number = |text: &str, what: &str| -> Result<f64, PaperError> {
            text.parse::<f64>().map_err(|_| PaperError::Parse {
                line,
                reason: format!("{what} `{text}` is not a number"),
            })
        };
        let channel_size_units = fields[2].parse::<u64>().map_err(|_| PaperError::Parse {
            line,
            reason: format!("channel size `{}` is not an integer", fields[2]),
        })?;
        points.push(PaperPoint {
            topology: fields[0].to_string(),
            channel_sizes: fields[1].to_string(),
            channel_size_units,
            scheme: fields[3].to_string(),
            success_ratio_pct: number(fields[4], "success ratio")?,
            normalized_throughput_pct: if fields[5].is_empty() {
                None
            } else {
                Some(number(fields[5], "throughput")?)
            },
        });
    }
    Ok(points)
}

/// The paper's point for a topology, channel-size kind, size and scheme.
pub fn lookup<'a>(
    points: &'a [PaperPoint],
    topology: &str,
    channel_sizes: &str,
    size_units: u64,
    scheme: &str,
) -> Option<&'a PaperPoint> {
    points.iter().find(|p| {
        p.topology == topology
            && p.channel_sizes == channel_sizes
            && p.channel_size_units == size_units
            && p.scheme == scheme
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reference_format() {
        let text = format!(
            "# c\n{HEADER}\nsf50,equal,800,spider,95.4,87.8\nsf10,equal,200,spider,76.0,\n"
        );
        let points = parse(&text).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].normalized_throughput_pct, None);
        assert_eq!(
            lookup(&points, "sf50", "equal", 800, "spider").map(|p| p.success_ratio_pct),
            Some(95.4)
        );
        assert_eq!(
            parse("sf50,equal,x,spider,1,2\n"),
            Err(PaperError::Parse {
                line: 1,
                reason: "channel size `x` is not an integer".into()
            })
        );
    }
}
