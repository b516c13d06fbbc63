//! A histogram of durations that observes without a lock.
//!
//! prometheus-client's `Histogram` takes a mutex on every observation, and
//! every request observes histograms that all worker threads share. On a
//! busy machine a worker preempted while it holds that mutex parks the
//! other workers until the scheduler runs it again — a stall of up to a
//! timeslice, for requests that did nothing wrong: a tail-latency source.
//! This one counts with relaxed atomics (a scrape may see a bucket one
//! observation ahead of the count: harmless for Prometheus, which reads
//! rates) and is encoded by prometheus-client's own histogram encoder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds in seconds; a last `+Inf` bucket is implied.
pub(super) const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Default)]
/// A latency histogram in seconds, with wxgate's buckets.
pub struct SecondsHistogram(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// Per bucket (not cumulative), `+Inf` last.
    buckets: [AtomicU64; SECONDS_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl SecondsHistogram {
    /// Counts one `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let i = SECONDS_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(SECONDS_BUCKETS.len());
        let counts = &self.0;
        counts.buckets[i].fetch_add(1, Ordering::Relaxed);
        counts.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        counts.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for SecondsHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for SecondsHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = &self.0;
        let mut buckets = [(f64::INFINITY, 0); SECONDS_BUCKETS.len() + 1];
        for (i, (bound, n)) in buckets.iter_mut().enumerate() {
            if let Some(upper) = SECONDS_BUCKETS.get(i) {
                *bound = *upper;
            }
            *n = counts.buckets[i].load(Ordering::Relaxed);
        }
        let sum = Duration::from_nanos(counts.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let count = counts.count.load(Ordering::Relaxed);
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn encodes_like_prometheus_clients_histogram() {
        let ours = SecondsHistogram::default();
        let theirs = prometheus_client::metrics::histogram::Histogram::new(SECONDS_BUCKETS);
        for ms in [0, 1, 3, 7, 30, 700, 20_000] {
            ours.observe(Duration::from_millis(ms));
            theirs.observe(Duration::from_millis(ms).as_secs_f64());
        }
        let text = |metric: Box<dyn Fn(&mut Registry)>| {
            let mut registry = Registry::default();
            metric(&mut registry);
            let mut out = String::new();
            encode(&mut out, &registry).unwrap();
            out
        };
        let a = text(Box::new(move |r| r.register("d", "x", ours.clone())));
        let b = text(Box::new(move |r| r.register("d", "x", theirs.clone())));
        assert_eq!(a, b);
        assert!(a.contains("d_bucket{le=\"0.005\"} 3"), "{a}");
        assert!(a.contains("d_count 7"), "{a}");
    }
}
