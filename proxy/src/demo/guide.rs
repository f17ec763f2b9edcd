//! The text `shardproxy demo` prints: what runs where, the published
//! records, and commands to try, with failover worked out for one key on
//! the ring in use.

use std::fmt::Write as _;

use super::{zone, Demo, SERVICE};

/// The key the guide follows through lookup and failover.
pub(super) const EXAMPLE_KEY: &str = "/users/42";

/// Renders the guide for a running demo.
pub(super) fn render(demo: &Demo) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail: the results are ignored below.
    let _ = write_guide(&mut out, demo);
    out
}

fn write_guide(out: &mut String, demo: &Demo) -> std::fmt::Result {
    let proxy = demo.proxy;
    let admin = demo.admin;
    let dns = demo.dns;

    writeln!(
        out,
        "shardproxy demo: a DNS server, {} backends and the proxy, all in this process.",
        demo.backends.len()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "DNS server  {dns}  (UDP and TCP), authoritative for {}",
        zone::ORIGIN
    )?;
    writeln!(
        out,
        "It publishes the ring of {}:",
        zone::SERVICE_NAME.trim_end_matches('.')
    )?;
    if demo.backends.iter().any(|backend| backend.token.is_some()) {
        writeln!(
            out,
            "SRV records list the instances, TXT records their tokens and the ring's settings."
        )?;
    } else {
        writeln!(
            out,
            "SRV and A records only, as Kubernetes publishes a headless service: the proxy\n\
             derives each instance's tokens from its name, and its config sets the replication."
        )?;
    }
    writeln!(out)?;
    indent(out, &zone::zone_file(&demo.zone()))?;
    writeln!(out)?;

    writeln!(
        out,
        "Backends (each answers with its name and the request headers it got):"
    )?;
    writeln!(out)?;
    let name_width = demo
        .backends
        .iter()
        .map(|backend| backend.name.len())
        .max()
        .unwrap_or(0);
    for (backend, share) in demo.backends.iter().zip(demo.shares()) {
        let url = format!("http://{}", backend.addr);
        match backend.token {
            Some(token) => write!(
                out,
                "  {:<name_width$}  {url:<22}  token {token}",
                backend.name
            )?,
            None => write!(
                out,
                "  {:<name_width$}  {url:<22}  {} derived tokens",
                backend.name,
                zone::VIRTUAL_NODES
            )?,
        }
        match share {
            Some(share) => writeln!(out, "  {:.1}% of the keys", share * 100.0)?,
            None => writeln!(out)?,
        }
    }
    writeln!(out)?;
    writeln!(out, "Proxy       http://{proxy}")?;
    writeln!(
        out,
        "Admin API   http://{admin}  (/ui, /ring, /ring/lookup, /metrics, /healthz, /readyz)"
    )?;
    writeln!(out)?;
    writeln!(out, "The proxy runs with this config:")?;
    writeln!(out)?;
    indent(out, demo.config_toml())?;
    writeln!(out)?;

    writeln!(out, "Try it:")?;
    writeln!(out)?;
    writeln!(
        out,
        "  # A request through the proxy; x-served-by names the node that answered."
    )?;
    writeln!(out, "  curl -i http://{proxy}{EXAMPLE_KEY}")?;
    writeln!(out)?;
    writeln!(
        out,
        "  # Where {EXAMPLE_KEY} lives: its hash and its preference list, primary first."
    )?;
    writeln!(
        out,
        "  curl -s 'http://{admin}/ring/lookup?service={SERVICE}&key={EXAMPLE_KEY}'"
    )?;
    let list = demo.preference_list(EXAMPLE_KEY);
    let primary = list.first().and_then(|&index| demo.backends.get(index));
    let replica = list.get(1).and_then(|&index| demo.backends.get(index));
    if let (Some(primary), Some(replica)) = (primary, replica) {
        writeln!(
            out,
            "  #   -> primary {}, replica {}",
            primary.name, replica.name
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "  # The whole ring: instances, tokens, shares, settings, fingerprint."
    )?;
    writeln!(out, "  curl -s http://{admin}/ring")?;
    writeln!(out)?;
    writeln!(
        out,
        "  # The same, drawn, in a browser: the ring page, with each instance's state"
    )?;
    writeln!(
        out,
        "  # (fail or crash a node as below and watch it) and a box to look keys up:"
    )?;
    writeln!(out, "  #   http://{admin}/ui")?;
    writeln!(out)?;
    if let (Some(primary), Some(replica)) = (primary, replica) {
        let node = primary.addr;
        writeln!(
            out,
            "  # Failover: make the primary of {EXAMPLE_KEY} fail (it answers 503)..."
        )?;
        writeln!(out, "  curl -X POST http://{node}/_demo/fail")?;
        writeln!(
            out,
            "  # ...and the proxy retries on the replica: x-served-by: {}",
            replica.name
        )?;
        writeln!(out, "  curl -i http://{proxy}{EXAMPLE_KEY}")?;
        writeln!(out, "  # Bring it back:")?;
        writeln!(out, "  curl -X POST http://{node}/_demo/recover")?;
        writeln!(
            out,
            "  # Or crash it for 30 s (connection refused), then ask again:"
        )?;
        writeln!(out, "  curl -X POST 'http://{node}/_demo/down?seconds=30'")?;
        writeln!(out, "  curl -i http://{proxy}{EXAMPLE_KEY}")?;
        writeln!(out)?;
    }
    writeln!(out, "  # The records, straight from the DNS server:")?;
    let (dns_ip, dns_port) = (dns.ip(), dns.port());
    let srv_name = zone::SERVICE_NAME.trim_end_matches('.');
    writeln!(out, "  dig @{dns_ip} -p {dns_port} SRV {srv_name}")?;
    if let Some(backend) = primary.or(demo.backends.first()) {
        if backend.token.is_some() {
            writeln!(
                out,
                "  dig @{dns_ip} -p {dns_port} TXT tokens.{}.{}",
                backend.addr.port(),
                backend.host
            )?;
        } else {
            writeln!(out, "  dig @{dns_ip} -p {dns_port} A {}", backend.host)?;
        }
    }
    writeln!(out)?;
    write!(out, "Press Ctrl-C to stop.")
}

/// Appends `text` with every line indented by two spaces.
fn indent(out: &mut String, text: &str) -> std::fmt::Result {
    for line in text.lines() {
        if line.is_empty() {
            writeln!(out)?;
        } else {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}
