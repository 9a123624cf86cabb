//! Load at a fixed rate (open loop): operations start on a schedule whether or not earlier
//! ones have answered, and each latency counts from the scheduled start, so a server that
//! falls behind shows its queue instead of slowing the client down.

use super::{Done, Driven};
use crate::error::BenchError;
use crate::report::Latencies;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Operations of a fixed-rate load in flight at most.
pub const IN_FLIGHT_MAX: usize = 1_024;

/// Starts `operation(n)` at `n / per_second` seconds for `duration`, and waits for the
/// last one. Past `in_flight_max` operations a start waits for one to end; the wait counts
/// in its latency, since the schedule, not the start, is the clock. The first error ends
/// the run.
pub async fn drive_at_rate<T, F, Fut>(
    per_second: f64,
    duration: Duration,
    in_flight_max: usize,
    operation: F,
) -> Result<Driven<T>, BenchError>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<Done<T>, BenchError>> + Send + 'static,
{
    let per_second = per_second.max(f64::MIN_POSITIVE);
    let slots = Arc::new(Semaphore::new(in_flight_max.max(1)));
    let mut in_flight = JoinSet::new();
    let mut driven = Driven {
        latencies: Latencies::default(),
        requests: 0,
        items: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    for n in 0u64.. {
        let offset = Duration::from_secs_f64(n as f64 / per_second);
        if offset >= duration {
            break;
        }
        let scheduled = started + offset;
        tokio::time::sleep_until(scheduled).await;
        let slot = slots.clone().acquire_owned().await;
        let slot = slot.map_err(|e| BenchError::Server(format!("in-flight slots: {e}")))?;
        let operation = operation(n);
        in_flight.spawn(async move {
            let done = operation.await;
            drop(slot);
            done.map(|done| (scheduled.elapsed(), done))
        });
        while let Some(ended) = in_flight.try_join_next() {
            take(&mut driven, ended)?;
        }
    }
    while let Some(ended) = in_flight.join_next().await {
        take(&mut driven, ended)?;
    }
    driven.elapsed = started.elapsed();
    Ok(driven)
}

type Ended<T> = Result<Result<(Duration, Done<T>), BenchError>, tokio::task::JoinError>;

fn take<T>(driven: &mut Driven<T>, ended: Ended<T>) -> Result<(), BenchError> {
    let ended = ended.map_err(|e| BenchError::Server(format!("an operation panicked: {e}")))?;
    let (latency, done) = ended?;
    driven.latencies.push(latency);
    driven.requests += done.requests;
    driven.items.push(done.item);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn latency_counts_from_the_schedule_not_from_the_start() {
        // One at a time, 30 ms each, scheduled 10 ms apart: the n-th starts at 30n ms and
        // ends at 30n + 30, but was due at 10n.
        let driven = drive_at_rate(100.0, Duration::from_millis(50), 1, |n| async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(Done { requests: 1, item: n })
        })
        .await
        .expect("the run ends");
        let mut items = driven.items.clone();
        items.sort_unstable();
        assert_eq!(items, [0, 1, 2, 3, 4]);
        let [p50, _, max] = driven.latencies.summary();
        assert_eq!((p50, max), (Duration::from_millis(90 - 20), Duration::from_millis(150 - 40)));
    }
}
