//! What a run measured, over transactions that arrived inside the steady-state window.
//!
//! - success ratio: transactions fully delivered before their timeout / transactions arrived;
//! - normalized throughput: value delivered before the timeout (partial deliveries count)
//!   / value arrived;
//! - completion time: from arrival until the last unit reached the receiver, successful
//!   transactions only.

use serde::Serialize;

use crate::event::{TimeUs, US_PER_MS};

/// Accumulates counts while the simulation runs.
#[derive(Clone, Debug)]
pub struct MetricsCollector {
    window_start_us: TimeUs,
    window_end_us: TimeUs,
    arrived: u64,
    succeeded: u64,
    value_arrived_units: u64,
    value_delivered_units: u64,
    completion_us: Vec<u32>,
}

/// Summary of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunMetrics {
    pub arrived: u64,
    pub succeeded: u64,
    pub value_arrived_units: u64,
    pub value_delivered_units: u64,
    /// Percent, 0 to 100.
    pub success_ratio_pct: f64,
    /// Percent, 0 to 100.
    pub normalized_throughput_pct: f64,
    pub completion_mean_ms: f64,
    pub completion_p50_ms: f64,
    pub completion_p99_ms: f64,
}

impl MetricsCollector {
    pub fn new(window_start_us: TimeUs, window_end_us: TimeUs) -> Self {
        MetricsCollector {
            window_start_us,
            window_end_us,
            arrived: 0,
            succeeded: 0,
            value_arrived_units: 0,
            value_delivered_units: 0,
            completion_us: Vec::new(),
        }
    }

    /// Whether a transaction arriving at `arrival_us` is measured.
    pub fn in_window(&self, arrival_us: TimeUs) -> bool {
        (self.window_start_us..self.window_end_us).contains(&arrival_us)
    }

    pub fn record_arrival(&mut self, amount_units: u64) {
        self.arrived += 1;
        self.value_arrived_units += amount_units;
    }

    /// A measured transaction's final state: what reached the receiver, and when it
    /// completed if it did.
    pub fn record_outcome(&mut self, delivered_units: u64, completion_us: Option<TimeUs>) {
        self.value_delivered_units += delivered_units;
        if let Some(time) = completion_us {
            self.succeeded += 1;
            self.completion_us
                .push(u32::try_from(time).unwrap_or(u32::MAX));
        }
    }

    pub fn summary(&self) -> RunMetrics {
        let pct = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                100.0 * part as f64 / whole as f64
            }
        };
        let mut sorted = self.completion_us.clone();
        sorted.sort_unstable();
        let quantile_ms = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let index = ((sorted.len() - 1) as f64 * q).round() as usize;
            sorted[index] as f64 / US_PER_MS as f64
        };
        let mean_ms = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().map(|&t| t as f64).sum::<f64>() / sorted.len() as f64 / US_PER_MS as f64
        };
        RunMetrics {
            arrived: self.arrived,
            succeeded: self.succeeded,
            value_arrived_units: self.value_arrived_units,
            value_delivered_units: self.value_delivered_units,
            success_ratio_pct: pct(self.succeeded, self.arrived),
            normalized_throughput_pct: pct(self.value_delivered_units, self.value_arrived_units),
            completion_mean_ms: mean_ms,
            completion_p50_ms: quantile_ms(0.5),
            completion_p99_ms: quantile_ms(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_quantiles() {
        let mut metrics = MetricsCollector::new(10, 20);
        assert!(!metrics.in_window(9) && metrics.in_window(10) && !metrics.in_window(20));
        for amount in [10, 30] {
            metrics.record_arrival(amount);
        }
        metrics.record_outcome(10, Some(60_000));
        metrics.record_outcome(15, None);
        let summary = metrics.summary();
        assert_eq!(summary.success_ratio_pct, 50.0);
        assert_eq!(summary.normalized_throughput_pct, 62.5);
        assert_eq!(summary.completion_p50_ms, 60.0);
    }
}
