//! Percentiles and the two renderings of a run's figures.

use crate::args::Options;
use crate::run::Outcome;

/// A run's figures, latencies in µs.
#[derive(Debug)]
pub struct Summary {
    addr: String,
    target_rate: f64,
    conns: usize,
    requests: u64,
    duration_us: u128,
    p50: u32,
    p90: u32,
    p99: u32,
    p999: u32,
    max: u32,
    mean: f64,
    outcome: Outcome,
}

impl Summary {
    pub fn new(opts: &Options, mut outcome: Outcome) -> Self {
        outcome.latencies_us.sort_unstable();
        let l = &outcome.latencies_us;
        let mean = if l.is_empty() {
            0.0
        } else {
            l.iter().map(|&v| f64::from(v)).sum::<f64>() / l.len() as f64
        };
        Summary {
            addr: opts.addr.to_string(),
            target_rate: opts.rate,
            conns: opts.conns,
            requests: l.len() as u64,
            duration_us: outcome.elapsed.as_micros(),
            p50: percentile(l, 50.0),
            p90: percentile(l, 90.0),
            p99: percentile(l, 99.0),
            p999: percentile(l, 99.9),
            max: l.last().copied().unwrap_or(0),
            mean,
            outcome,
        }
    }

    fn rate(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 * 1e6 / self.duration_us as f64
        }
    }

    fn errors(&self) -> u64 {
        let o = &self.outcome;
        o.err_status + o.err_io + o.err_timeout
    }

    pub fn human(&self) -> String {
        let o = &self.outcome;
        let mut human = format!(
            "fixedrate {}: {} responses at {:.0} req/s (target {:.0}, {} connections)\n  \
             latency from due time: p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs, mean {:.1} µs\n  \
             errors {} (status {}, connection {}, timeout {}), reconnects {}, late sends {} (max lag {} µs)",
            self.addr,
            self.requests,
            self.rate(),
            self.target_rate,
            self.conns,
            self.p50,
            self.p90,
            self.p99,
            self.p999,
            self.max,
            self.mean,
            self.errors(),
            o.err_status,
            o.err_io,
            o.err_timeout,
            o.reconnects,
            o.late_sends,
            o.max_send_lag.as_micros()
        );
        if let Some(t) = &o.tls {
            human += &format!(
                "\n  TLS: {}, {}, key exchange {}, ALPN {}",
                t.version, t.cipher, t.group, t.alpn
            );
        }
        if let Some(e) = &o.tls_error {
            human += &format!("\n  first TLS error on an open connection: {e}");
        }
        human
    }

    /// The `RESULT` line; with `--tls`, `tls_version=`, `tls_cipher=`,
    /// `tls_group=` and `alpn=` at its end.
    pub fn machine(&self) -> String {
        let o = &self.outcome;
        let mut machine = format!(
            "RESULT requests={} duration_us={} rate={:.1} target_rate={:.1} errors={} err_status={} err_io={} err_timeout={} \
             reconnects={} late_sends={} max_send_lag_us={} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} mean_us={:.1}",
            self.requests,
            self.duration_us,
            self.rate(),
            self.target_rate,
            self.errors(),
            o.err_status,
            o.err_io,
            o.err_timeout,
            o.reconnects,
            o.late_sends,
            o.max_send_lag.as_micros(),
            self.p50,
            self.p90,
            self.p99,
            self.p999,
            self.max,
            self.mean
        );
        if let Some(t) = &o.tls {
            machine += &format!(
                " tls_version={} tls_cipher={} tls_group={} alpn={}",
                t.version, t.cipher, t.group, t.alpn
            );
        }
        machine
    }
}

/// Nearest-rank percentile of sorted values (0 when there are none).
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    // the epsilon keeps 99.9% of 1000 at rank 999 despite 0.999 * 1000 > 999 in floating point
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(
            (
                percentile(&v, 50.0),
                percentile(&v, 99.0),
                percentile(&v, 99.9)
            ),
            (500, 990, 999)
        );
        assert_eq!(percentile(&v, 100.0), 1000);
        assert_eq!(percentile(&[7], 1.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
