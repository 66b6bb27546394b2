//! Percentiles of measured latencies, for every benchmark that prints them: `dlock bench`, and
//! the raw-store figures set beside it, so both count alike.

/// The `p`th percentile of sorted microsecond samples, in milliseconds (nearest rank).
pub(crate) fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}
