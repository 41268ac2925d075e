//! End-to-end processing latency (publish to FIN) percentiles, as
//! `--e2e-processing-latency-percentile` asks for them.
//!
//! NSQ keeps approximate quantile streams (perks) over a sliding window.
//! We keep the most recent samples inside the window, at most
//! [`MAX_SAMPLES`] of them, and compute exact percentiles of those when
//! stats are read: bounded memory, no cost per message beyond a push.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples kept per channel.
pub const MAX_SAMPLES: usize = 8192;

#[derive(Default)]
pub struct Latencies {
    /// (when recorded, latency in ns), oldest first.
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Latencies {
    pub fn record(&self, latency_ns: u64) {
        let mut s = self.samples.lock();
        if s.len() == MAX_SAMPLES {
            s.pop_front();
        }
        s.push_back((Instant::now(), latency_ns));
    }

    /// The samples recorded within `window`.
    pub fn recent(&self, window: Duration) -> Vec<u64> {
        let now = Instant::now();
        let mut s = self.samples.lock();
        while s
            .front()
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) > window)
        {
            s.pop_front();
        }
        s.iter().map(|&(_, v)| v).collect()
    }
}

/// Each quantile (in the order given) of `samples`, by the nearest-rank
/// method; `None` without samples.
pub fn percentiles(mut samples: Vec<u64>, quantiles: &[f64]) -> Option<Vec<(f64, f64)>> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    Some(
        quantiles
            .iter()
            .map(|&q| {
                let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
                (q, samples[rank - 1] as f64)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(
            percentiles(samples, &[0.99, 0.5, 1.0]),
            Some(vec![(0.99, 99.0), (0.5, 50.0), (1.0, 100.0)])
        );
        assert_eq!(percentiles(vec![], &[0.5]), None);
    }

    #[test]
    fn bounded_and_windowed() {
        let l = Latencies::default();
        for i in 0..(MAX_SAMPLES as u64 + 10) {
            l.record(i);
        }
        let recent = l.recent(Duration::from_secs(60));
        assert_eq!(recent.len(), MAX_SAMPLES);
        assert_eq!(recent[0], 10);
        assert!(l.recent(Duration::ZERO).len() <= MAX_SAMPLES);
    }
}
