//! fixedrate: an open-loop HTTP/1.1 load generator for `loadtest/compare.sh`.
//!
//! It sends `GET <prefix><n>` (n uniform in `0..keys`, seeded) at a fixed
//! rate over a pool of keep-alive connections, and measures each request's
//! latency from the time it was *due* by the schedule, not from the time it
//! was sent. When the server stalls and every connection is busy, requests
//! wait for a free connection and that wait counts in their latency: the
//! coordinated-omission correction wrk2 makes. (wrk's own `delay()` pacing
//! measures from the send, so a stall would hide behind the requests it
//! delayed; its timers have millisecond resolution too.)
//!
//! One thread, one epoll set, `epoll_pwait2` timeouts in nanoseconds and a
//! 1 ns timer slack, so the sends are on time to within a few µs.
//!
//! HTTPS with `--tls --ca FILE [--server-name NAME]` (rustls, ring provider,
//! TLS 1.2 and 1.3, ALPN `http/1.1` only, in the same loop: `read_tls`,
//! `process_new_packets`, `reader()`, `writer()`, `write_tls` on the
//! non-blocking sockets). The server's certificate must chain to one of the
//! PEM certificates in `--ca`, or be one of them (a self-signed test
//! certificate, even one marked as a CA, as `openssl req -x509` makes it);
//! there is no way to skip the check. It must be valid for `--server-name`, a
//! DNS name (also sent as SNI) or an IP address, by default `localhost`
//! (`--addr` is always an IP address, so it cannot supply a name). Every
//! connection completes its handshake when it is opened, before the schedule
//! starts, so the latencies are those of requests on established keep-alive
//! connections, as wrk's: the record layer, not handshakes. (A connection the
//! server closes during the run is opened again at once, handshake included,
//! blocking the loop meanwhile: the requests due then count that wait.)
//!
//! Usage: `fixedrate --addr 127.0.0.1:8080 --rate 28000 --duration 10
//! [--conns 64] [--keys 100000] [--prefix /k/] [--seed 20240601] [--drain 5]
//! [--tls --ca cert.pem [--server-name localhost]]`.
//! Prints a summary to stderr and one machine-readable line to stdout:
//! `RESULT requests=... rate=... p50_us=... p99_us=... errors=...`, with
//! `--tls` ending in `tls_version=... tls_cipher=... tls_group=... alpn=...`
//! (what the first connection's handshake settled on).

mod args;
mod response;
mod run;
mod stats;
mod tls;

use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match args::Options::parse(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("fixedrate: {e}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match run::run(&opts) {
        Ok(outcome) => {
            let summary = stats::Summary::new(&opts, outcome);
            eprintln!("{}", summary.human());
            println!("{}", summary.machine());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fixedrate: {e}");
            ExitCode::FAILURE
        }
    }
}
