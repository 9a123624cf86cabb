//! What a run measured, and how it is printed: a table for people, a JSON line for tools.

use serde_json::json;
use std::time::Duration;

/// Every latency of a run, kept whole so the percentiles are exact.
#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, latency: Duration) {
        self.0.push(latency);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// p50, p99 and max, in that order; zeros when nothing was measured.
    pub(crate) fn summary(mut self) -> [Duration; 3] {
        self.0.sort_unstable();
        let at = |quantile: f64| -> Duration {
            let Some(last) = self.0.len().checked_sub(1) else { return Duration::ZERO };
            self.0[((last as f64) * quantile).round() as usize]
        };
        [at(0.50), at(0.99), at(1.0)]
    }
}

/// One run's figures.
pub struct RunReport {
    pub run: &'static str,
    pub store: &'static str,
    pub connections: usize,
    /// What the run counts: dispatches, replays, flows, decisions.
    pub operations: u64,
    /// HTTP requests sent while measuring (a flow is several).
    pub requests: u64,
    pub elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    pub note: Option<&'static str>,
    /// Figures a run measures besides its latencies (store size, memory, times), by name
    /// with their unit in it.
    pub figures: Vec<(&'static str, f64)>,
}

impl RunReport {
    pub fn new(
        run: &'static str,
        store: &'static str,
        connections: usize,
        requests: u64,
        elapsed: Duration,
        latencies: Latencies,
    ) -> RunReport {
        let operations = latencies.len() as u64;
        let [p50, p99, max] = latencies.summary();
        RunReport {
            run,
            store,
            connections,
            operations,
            requests,
            elapsed,
            p50,
            p99,
            max,
            note: None,
            figures: Vec::new(),
        }
    }

    /// Adds a figure, rounded to three decimals.
    pub fn figure(&mut self, name: &'static str, value: f64) {
        self.figures.push((name, (value * 1000.0).round() / 1000.0));
    }

    /// The figures as one line, `name=value` apart; `None` when there are none.
    pub fn figures_line(&self) -> Option<String> {
        let figures: Vec<String> =
            self.figures.iter().map(|(name, value)| format!("{name}={value}")).collect();
        (!figures.is_empty()).then(|| figures.join(" "))
    }

    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn json_line(&self) -> String {
        json!({
            "run": self.run,
            "store": self.store,
            "connections": self.connections,
            "operations": self.operations,
            "requests": self.requests,
            "elapsedMs": ms(self.elapsed),
            "perSecond": (self.per_second() * 10.0).round() / 10.0,
            "p50Ms": ms(self.p50),
            "p99Ms": ms(self.p99),
            "maxMs": ms(self.max),
            "invariants": "held",
            "note": self.note,
            "figures": self.figures.iter().map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>(),
        })
        .to_string()
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

pub fn table_header() -> String {
    format!(
        "{:<17} {:<8} {:>5} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8}  invariants",
        "run", "store", "conns", "ops", "requests", "ops/s", "p50 ms", "p99 ms", "max ms"
    )
}

pub fn table_row(r: &RunReport) -> String {
    format!(
        "{:<17} {:<8} {:>5} {:>9} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>8.2}  held",
        r.run,
        r.store,
        r.connections,
        r.operations,
        r.requests,
        r.per_second(),
        ms(r.p50),
        ms(r.p99),
        ms(r.max)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_exact_ranks_of_the_sorted_latencies() {
        let mut latencies = Latencies::default();
        for us in (1..=100).rev() {
            latencies.push(Duration::from_micros(us));
        }
        let [p50, p99, max] = latencies.summary();
        assert_eq!(
            (p50, p99, max),
            (Duration::from_micros(51), Duration::from_micros(99), Duration::from_micros(100))
        );
        assert_eq!(Latencies::default().summary(), [Duration::ZERO; 3]);
    }
}
