//! Latencies of one class, and their percentiles.

use std::time::{Duration, Instant};

pub struct Outcome {
    name: String,
    /// Microseconds, one per answered request.
    latencies: Vec<u32>,
    non_2xx: u64,
    pub errors: u64,
    /// Requests whose connection was still busy when they were due.
    pub late: u64,
    /// When the last answer (or error) came.
    pub last: Instant,
}

impl Outcome {
    pub fn new(name: &str) -> Self {
        Outcome {
            name: name.to_owned(),
            latencies: Vec::new(),
            non_2xx: 0,
            errors: 0,
            late: 0,
            last: Instant::now(),
        }
    }

    pub fn record(&mut self, latency: Duration, status: u16) {
        self.latencies
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        if !(200..300).contains(&status) {
            self.non_2xx += 1;
        }
    }

    pub fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        self.late += other.late;
        self.last = self.last.max(other.last);
    }

    /// The `LOADGEN ...` line, its duration counted from `start`, when the first request was due.
    pub fn summary(&self, start: Instant) -> String {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let duration = self.last.saturating_duration_since(start).as_micros();
        format!(
            "LOADGEN class={} requests={} duration_us={duration} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} errors={} non2xx={} late={}",
            self.name,
            sorted.len(),
            percentile(&sorted, 500),
            percentile(&sorted, 900),
            percentile(&sorted, 990),
            percentile(&sorted, 999),
            sorted.last().copied().unwrap_or(0),
            self.errors,
            self.non_2xx,
            self.late,
        )
    }
}

/// Nearest rank: the smallest value with at least `per_mille`/1000 of the values at or below
/// it (in integers: 99.9% of 1000 values is the 999th, never the 1000th by rounding).
fn percentile(sorted: &[u32], per_mille: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (per_mille * sorted.len()).div_ceil(1000);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&values, 500), 500);
        assert_eq!(percentile(&values, 990), 990);
        assert_eq!(percentile(&values, 999), 999);
        assert_eq!(percentile(&values, 1000), 1000);
        assert_eq!(percentile(&[7], 999), 7);
        assert_eq!(percentile(&[], 500), 0);
    }
}
