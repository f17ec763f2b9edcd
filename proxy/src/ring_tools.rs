//! `shardproxy ring diff` and `shardproxy ring plan` (SPEC §8): tools for
//! changing a ring safely, working on zone files rather than on live DNS,
//! so that a change can be reviewed before it is published; and
//! [`publish`], `shardproxy ring publish` (SPEC §12), which publishes the
//! reviewed zone with one DNS UPDATE.
//!
//! The ring crate does the work ([`shardproxy_ring::zone`],
//! [`shardproxy_ring::diff`], [`shardproxy_ring::plan`]); this module reads
//! the files, and writes what operators and scripts read: text, and the JSON
//! of `--json`. Each report is built as a string by a function that takes
//! the files' text, so tests need no files.
//!
//! Both commands read rings with the rules of discovery (SPEC §3): an SRV
//! target without an A or AAAA record in the zone is an error (a proxy would
//! refuse that ring), an instance without tokens is left out with a warning.

pub mod load_file;
pub mod publish;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;
use shardproxy_ring::load::RecordedLoad;
use shardproxy_ring::zone::{Zone, ZoneRing, ZoneRingError};
use shardproxy_ring::{
    balanced_tokens, ChangedRange, InstanceName, KeySpace, NameError, PlanError, Ring, RingDiff,
    ZoneError,
};

/// Why a ring tool could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A zone file does not parse.
    #[error("{path}: {source}")]
    Zone {
        /// The file.
        path: String,
        /// Where and why.
        source: ZoneError,
    },
    /// A zone file publishes no usable ring for the service.
    #[error("{path}: {source}")]
    Ring {
        /// The file.
        path: String,
        /// Why.
        source: ZoneRingError,
    },
    /// An `--add` that is not `TARGET:PORT`.
    #[error("--add {text:?}: {reason}")]
    BadAddition {
        /// The argument.
        text: String,
        /// Why.
        reason: String,
    },
    /// A recorded load (`--by-load`) that cannot be used.
    #[error("{path}: {reason}")]
    Load {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No plan can be made.
    #[error("cannot plan: {0}")]
    Plan(#[from] PlanError),
    /// JSON could not be written.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A zone file's name (for messages) and text.
#[derive(Clone, Copy, Debug)]
pub struct ZoneInput<'a> {
    /// How to name the file in messages: its path.
    pub label: &'a str,
    /// Its content.
    pub text: &'a str,
}

/// What a command prints: its output, and warnings for stderr.
#[derive(Debug, Default)]
pub struct Report {
    /// For stdout.
    pub output: String,
    /// For stderr, one per line, without the `warning: ` prefix.
    pub warnings: Vec<String>,
}

/// Parses a zone file and reads the service's ring from it; the ring's
/// warnings are added to `warnings`, prefixed with the file's label.
fn read_ring(
    input: ZoneInput<'_>,
    srv: &str,
    warnings: &mut Vec<String>,
) -> Result<(Zone, ZoneRing), ToolError> {
    let zone = Zone::parse(input.text).map_err(|source| ToolError::Zone {
        path: input.label.to_owned(),
        source,
    })?;
    let ring = ZoneRing::read(&zone, srv).map_err(|source| ToolError::Ring {
        path: input.label.to_owned(),
        source,
    })?;
    warnings.extend(
        ring.warnings
            .iter()
            .map(|warning| format!("{}: {warning}", input.label)),
    );
    Ok((zone, ring))
}

/// A share as the commands print it.
fn percent(space: KeySpace) -> String {
    format!("{:.4}%", space.fraction() * 100.0)
}

/// One line about a ring: its size, settings and fingerprint.
fn summary(ring: &Ring) -> String {
    let tokens: usize = ring
        .instances()
        .iter()
        .map(|instance| instance.tokens().len())
        .sum();
    format!(
        "{} instances, {} tokens, {}, fingerprint {}",
        ring.instances().len(),
        tokens,
        ring.replication(),
        ring.fingerprint()
    )
}

// === ring diff ===

/// `ring diff --json` (SPEC §8).
#[derive(Debug, Serialize)]
pub struct DiffView {
    /// The share of the key space whose primary changes.
    pub moved_primary: f64,
    /// The share whose preference list changes in any way, order included.
    pub moved_any: f64,
    /// With `--by-load`: the share of the recorded requests whose primary
    /// changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_primary_requests: Option<f64>,
    /// The ranges whose preference list changes, in ring order.
    pub ranges: Vec<DiffRangeView>,
}

/// One range of [`DiffView`]: `(after, through]`, wrapping when
/// `after > through`, the whole ring when they are equal.
#[derive(Debug, Serialize)]
pub struct DiffRangeView {
    /// Exclusive start, 32 hex digits.
    pub after: String,
    /// Inclusive end, 32 hex digits.
    pub through: String,
    /// The old preference list, `host:port`, primary first.
    pub old: Vec<String>,
    /// The new preference list.
    pub new: Vec<String>,
}

fn names(list: &[InstanceName]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

impl DiffView {
    /// The view of a diff.
    pub fn new(diff: &RingDiff) -> DiffView {
        DiffView {
            moved_primary: diff.moved_primary.fraction(),
            moved_any: diff.moved_any.fraction(),
            moved_primary_requests: None,
            ranges: diff
                .ranges
                .iter()
                .map(|range| DiffRangeView {
                    after: range.after.to_string(),
                    through: range.through.to_string(),
                    old: names(&range.old),
                    new: names(&range.new),
                })
                .collect(),
        }
    }
}

/// `ring diff`: the report on `old` and `new` for the service `srv`.
///
/// # Errors
///
/// A zone that does not parse or publishes no usable ring for `srv`.
pub fn diff_report(
    srv: &str,
    old: ZoneInput<'_>,
    new: ZoneInput<'_>,
    json: bool,
) -> Result<Report, ToolError> {
    diff_report_by_load(srv, old, new, json, None)
}

/// [`diff_report`], with the share of `load` (recorded on OLD's ring)
/// whose primary changes when it is given (`--by-load`).
///
/// # Errors
///
/// As [`diff_report`].
pub fn diff_report_by_load(
    srv: &str,
    old: ZoneInput<'_>,
    new: ZoneInput<'_>,
    json: bool,
    load: Option<&RecordedLoad>,
) -> Result<Report, ToolError> {
    let mut warnings = Vec::new();
    let (_, old_ring) = read_ring(old, srv, &mut warnings)?;
    let (_, new_ring) = read_ring(new, srv, &mut warnings)?;
    let diff = shardproxy_ring::diff(&old_ring.ring, &new_ring.ring);
    let moved_requests = load.map(|load| {
        let moved: f64 = diff
            .ranges
            .iter()
            .filter(|range| range.primary_moves())
            .map(|range| load.between(range.after, range.through))
            .sum();
        (moved, load.total())
    });
    let output = if json {
        let mut view = DiffView::new(&diff);
        view.moved_primary_requests = moved_requests.map(|(moved, total)| share(moved, total));
        serde_json::to_string_pretty(&view)? + "\n"
    } else {
        let mut text = diff_text(&old_ring, &new_ring, (old.label, new.label), &diff);
        if let Some((moved, total)) = moved_requests {
            // After the line of the key space whose primary changes.
            let marker = "of the key space\n";
            text.insert_str(
                text.find(marker).map_or(0, |at| at + marker.len()),
                &format!(
                    "  primary changes for         {:>9} of the recorded requests ({moved:.0} of {total:.0})\n",
                    format!("{:.2}%", 100.0 * share(moved, total))
                ),
            );
        }
        text
    };
    Ok(Report { output, warnings })
}

/// `part` of `total` as a fraction; 0 when nothing was recorded.
fn share(part: f64, total: f64) -> f64 {
    if total > 0.0 {
        part / total
    } else {
        0.0
    }
}

fn diff_text(old: &ZoneRing, new: &ZoneRing, labels: (&str, &str), diff: &RingDiff) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(text, "ring diff of {}", old.service);
    let _ = writeln!(text, "  old {}: {}", labels.0, summary(&old.ring));
    let _ = writeln!(text, "  new {}: {}", labels.1, summary(&new.ring));
    let _ = writeln!(
        text,
        "  primary changes for         {:>9} of the key space",
        percent(diff.moved_primary)
    );
    let _ = writeln!(
        text,
        "  preference list changes for {:>9} of the key space",
        percent(diff.moved_any)
    );
    if diff.ranges.is_empty() {
        let _ = writeln!(
            text,
            "no range changes: every key keeps its preference list"
        );
        return text;
    }
    let _ = writeln!(
        text,
        "{} range{} change{} ((after, through], in ring order):",
        diff.ranges.len(),
        if diff.ranges.len() == 1 { "" } else { "s" },
        if diff.ranges.len() == 1 { "s" } else { "" },
    );
    let header = ["after", "through", "share", "old", "new", "loses", "gains"].map(String::from);
    let rows: Vec<[String; 7]> = diff.ranges.iter().map(range_row).collect();
    let mut widths = header.clone().map(|cell| cell.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::from(" ");
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            line.push(' ');
            // The share is a number: right-aligned.
            if index == 2 {
                let _ = write!(line, "{cell:>width$}");
            } else {
                let _ = write!(line, "{cell:<width$}");
            }
            line.push(' ');
        }
        let _ = writeln!(text, "{}", line.trim_end());
    }
    text
}

fn range_row(range: &ChangedRange) -> [String; 7] {
    let list = |names: &mut dyn Iterator<Item = &InstanceName>| {
        let names: Vec<String> = names.map(ToString::to_string).collect();
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(",")
        }
    };
    [
        range.after.to_string(),
        range.through.to_string(),
        percent(range.size()),
        list(&mut range.old.iter()),
        list(&mut range.new.iter()),
        list(&mut range.losing()),
        list(&mut range.gaining()),
    ]
}

// === ring plan ===

/// What a plan does to a recorded load.
struct LoadShift {
    /// Requests whose primary moves (to the added instances).
    moved: f64,
    /// Every request recorded.
    total: f64,
    /// The most requests any instance was primary for, before and after.
    busiest_before: f64,
    busiest_after: f64,
}

impl LoadShift {
    fn of(old: &Ring, plan: &shardproxy_ring::Plan, load: &RecordedLoad) -> LoadShift {
        let busiest = |ring: &Ring| {
            let mut per_instance = vec![0.0_f64; ring.instances().len()];
            for range in ring.ranges() {
                if let Some(slot) = per_instance.get_mut(range.owner as usize) {
                    *slot += load.between(range.after, range.through);
                }
            }
            per_instance.into_iter().fold(0.0, f64::max)
        };
        let moved = plan
            .ring
            .ranges()
            .filter(|range| {
                plan.ring
                    .instance(range.owner)
                    .is_some_and(|owner| plan.added.iter().any(|added| &added.name == owner.name()))
            })
            .map(|range| load.between(range.after, range.through))
            .sum();
        LoadShift {
            moved,
            total: load.total(),
            busiest_before: busiest(old),
            busiest_after: busiest(&plan.ring),
        }
    }
}

/// `ring plan --json`.
#[derive(Debug, Serialize)]
pub struct PlanView {
    /// The SRV name, absolute.
    pub service: String,
    /// Tokens given to each added instance.
    pub tokens_per_instance: u32,
    /// The share of the key space whose primary moves (to the added
    /// instances).
    pub moved_primary: f64,
    /// The share whose preference list changes in any way.
    pub moved_any: f64,
    /// With `--by-load`: the share of the recorded requests whose primary
    /// moves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_primary_requests: Option<f64>,
    /// The added instances, in the order given.
    pub instances: Vec<PlannedView>,
    /// The master-file lines to publish, in order: per instance its SRV
    /// record, then its `tokens.` TXT record(s).
    pub records: Vec<String>,
    /// SRV targets of added instances that have no A or AAAA record in the
    /// zone: the operator must publish one.
    pub needs_address: Vec<String>,
    /// The planned ring's fingerprint, when every added target has an
    /// address in the zone (it covers addresses).
    pub fingerprint: Option<String>,
}

/// One added instance of [`PlanView`].
#[derive(Debug, Serialize)]
pub struct PlannedView {
    /// `host:port`.
    pub instance: String,
    /// The SRV target, absolute.
    pub target: String,
    /// The port.
    pub port: u16,
    /// `ip:port` from the zone's address records, if it has any.
    pub addr: Option<String>,
    /// Its tokens in the order handed out, 32 hex digits.
    pub tokens: Vec<String>,
    /// For each token, the range it split and whose that range was.
    pub splits: Vec<SplitView>,
}

/// One split of [`PlannedView`].
#[derive(Debug, Serialize)]
pub struct SplitView {
    /// The new token (the range's midpoint).
    pub token: String,
    /// The range split, `(after, through]`.
    pub after: String,
    /// Its end.
    pub through: String,
    /// Its owner until then, who keeps `(token, through]`.
    pub from: String,
}

/// Parses `TARGET:PORT`.
///
/// # Errors
///
/// [`ToolError::BadAddition`] when it is not that.
pub fn parse_addition(text: &str) -> Result<InstanceName, ToolError> {
    let bad = |reason: String| ToolError::BadAddition {
        text: text.to_owned(),
        reason,
    };
    let Some((target, port)) = text.rsplit_once(':') else {
        return Err(bad("expected TARGET:PORT".to_owned()));
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&port| port > 0)
        .ok_or_else(|| bad(format!("port {port:?} is not a number from 1 to 65535")))?;
    InstanceName::new(target, port).map_err(|error: NameError| bad(error.to_string()))
}

/// `ring plan`: the plan for adding `additions` (`TARGET:PORT`) to the ring
/// of `srv` in `zone`, `tokens` tokens each.
///
/// # Errors
///
/// A zone that does not parse or publishes no usable ring, a bad `--add`,
/// or a plan that cannot be made (empty ring, instance already in it).
pub fn plan_report(
    srv: &str,
    zone: ZoneInput<'_>,
    additions: &[String],
    tokens: u32,
    json: bool,
) -> Result<Report, ToolError> {
    plan_report_by_load(srv, zone, additions, tokens, json, None)
}

/// [`plan_report`], splitting by the requests of `load` (recorded on the
/// zone's ring) when it is given (`--by-load`): the busiest range at its
/// request median rather than the largest at its midpoint.
///
/// # Errors
///
/// As [`plan_report`].
pub fn plan_report_by_load(
    srv: &str,
    zone: ZoneInput<'_>,
    additions: &[String],
    tokens: u32,
    json: bool,
    load: Option<&RecordedLoad>,
) -> Result<Report, ToolError> {
    let mut warnings = Vec::new();
    let (parsed, old) = read_ring(zone, srv, &mut warnings)?;
    let mut joining = Vec::with_capacity(additions.len());
    let mut addresses: Vec<Option<IpAddr>> = Vec::with_capacity(additions.len());
    for text in additions {
        let name = parse_addition(text)?;
        let address = parsed.address_of(&format!("{}.", name.host()));
        addresses.push(address);
        // Without an address the fingerprint cannot be promised; the
        // unspecified address stands in so the ring can be built.
        let ip = address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        joining.push((name.clone(), SocketAddr::new(ip, name.port())));
    }
    let plan = match load {
        Some(load) => shardproxy_ring::plan_by_load(&old.ring, &joining, tokens, load)?,
        None => shardproxy_ring::plan(&old.ring, &joining, tokens)?,
    };
    let moved = shardproxy_ring::diff(&old.ring, &plan.ring);
    let by_load = load.map(|load| LoadShift::of(&old.ring, &plan, load));

    let mut view = PlanView {
        service: old.service.clone(),
        tokens_per_instance: tokens,
        moved_primary: plan.moved_primary.fraction(),
        moved_any: moved.moved_any.fraction(),
        moved_primary_requests: by_load
            .as_ref()
            .map(|shift| share(shift.moved, shift.total)),
        instances: Vec::new(),
        records: Vec::new(),
        needs_address: Vec::new(),
        fingerprint: addresses
            .iter()
            .all(Option::is_some)
            .then(|| plan.ring.fingerprint().to_string()),
    };
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        text,
        "; ring plan for {} from {}: adds {} ({tokens} token{} each)",
        old.service,
        zone.label,
        plan.added
            .iter()
            .map(|added| added.name.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        if tokens == 1 { "" } else { "s" },
    );
    let _ = writeln!(
        text,
        "; the primary of {} of the key space moves (the preference list of {} changes)",
        percent(plan.moved_primary),
        percent(moved.moved_any)
    );
    if let Some(shift) = &by_load {
        let _ = writeln!(
            text,
            "; by load: the primary of {:.2}% of the recorded requests moves ({:.0} of {:.0}); the busiest instance had {:.0}, has {:.0}",
            100.0 * share(shift.moved, shift.total),
            shift.moved,
            shift.total,
            shift.busiest_before,
            shift.busiest_after,
        );
    }
    let _ = writeln!(text, "; old ring:     {}", summary(&old.ring));
    match &view.fingerprint {
        Some(_) => {
            let _ = writeln!(text, "; planned ring: {}", summary(&plan.ring));
        }
        None => {
            let _ = writeln!(
                text,
                "; planned ring: its fingerprint is known once every new target has an address"
            );
        }
    }
    for (added, address) in plan.added.iter().zip(&addresses) {
        let target = added.target();
        let records = added.records(&old.service, old.srv_template);
        let _ = writeln!(text, ";\n; {}", added.name);
        for split in &added.splits {
            let _ = writeln!(
                text,
                ";   token {} splits ({}, {}] of {}",
                split.token, split.after, split.through, split.from
            );
        }
        if old.instance(&added.name).is_some() {
            let _ = writeln!(
                text,
                "; its SRV record is in the zone already (it had no tokens)"
            );
        }
        for record in &records {
            let _ = writeln!(text, "{record}");
        }
        match address {
            Some(ip) => {
                let _ = writeln!(
                    text,
                    "; {target} has an address in the zone ({ip}); address records are the operator's"
                );
            }
            None => {
                let _ = writeln!(
                    text,
                    "; {target} has no A or AAAA record in the zone: publish one (address records are the operator's); proxies refuse a ring with an SRV target without an address"
                );
                view.needs_address.push(target.clone());
            }
        }
        view.instances.push(PlannedView {
            instance: added.name.to_string(),
            target,
            port: added.name.port(),
            addr: address.map(|ip| SocketAddr::new(ip, added.name.port()).to_string()),
            tokens: added.tokens().iter().map(ToString::to_string).collect(),
            splits: added
                .splits
                .iter()
                .map(|split| SplitView {
                    token: split.token.to_string(),
                    after: split.after.to_string(),
                    through: split.through.to_string(),
                    from: split.from.to_string(),
                })
                .collect(),
        });
        view.records.extend(records);
    }
    let output = if json {
        serde_json::to_string_pretty(&view)? + "\n"
    } else {
        text
    };
    Ok(Report { output, warnings })
}

/// `ring plan --balanced N`: writes the `n` tokens to `out`, one per line,
/// or as a JSON list; streamed, so a large `n` needs no memory.
///
/// # Errors
///
/// Writing failed.
pub fn write_balanced(out: &mut impl std::io::Write, n: u64, json: bool) -> std::io::Result<()> {
    if json {
        out.write_all(b"[")?;
        for (index, token) in balanced_tokens(n).enumerate() {
            let separator = if index == 0 { "" } else { "," };
            write!(out, "{separator}\n  \"{token}\"")?;
        }
        out.write_all(b"\n]\n")
    } else {
        for token in balanced_tokens(n) {
            writeln!(out, "{token}")?;
        }
        Ok(())
    }
}

// === the commands ===

fn read(path: &Path) -> Result<String, ToolError> {
    std::fs::read_to_string(path).map_err(|source| ToolError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Writes `text` to stdout: exit 0, or 1 when it cannot be written (a
/// closed pipe), so that a script never takes a cut-off output for a
/// whole one. Every one-shot command prints through this.
pub fn print(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Prints a report: warnings on stderr, the output on stdout. Exit 0, or 1
/// on any error.
fn finish(report: Result<Report, ToolError>) -> ExitCode {
    match report {
        Ok(report) => {
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            print(&report.output)
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Reads OLD and NEW and hands them to `compare`, each labelled with its
/// path: what `ring diff` and `ring publish` start with.
fn with_old_and_new<T, E: From<ToolError>>(
    old: &Path,
    new: &Path,
    compare: impl FnOnce(ZoneInput<'_>, ZoneInput<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let (old_text, new_text) = (read(old)?, read(new)?);
    let (old_label, new_label) = (old.display().to_string(), new.display().to_string());
    compare(
        ZoneInput {
            label: &old_label,
            text: &old_text,
        },
        ZoneInput {
            label: &new_label,
            text: &new_text,
        },
    )
}

/// `shardproxy ring diff`. Exit 0 whether or not anything changed; 1 when a
/// zone (or the `by_load` file) cannot be read.
pub fn run_diff(srv: &str, old: &Path, new: &Path, json: bool, by_load: Option<&Path>) -> ExitCode {
    finish((|| {
        let load = by_load.map(read_load).transpose()?;
        with_old_and_new(old, new, |old, new| {
            diff_report_by_load(srv, old, new, json, load.as_ref())
        })
    })())
}

/// What `shardproxy ring plan --srv --zone --add` was asked.
#[derive(Clone, Copy, Debug)]
pub struct PlanRequest<'a> {
    /// `--srv`.
    pub srv: &'a str,
    /// `--zone`.
    pub zone: &'a Path,
    /// `--add`, in order.
    pub additions: &'a [String],
    /// `--tokens`.
    pub tokens: u32,
    /// `--by-load`.
    pub by_load: Option<&'a Path>,
}

/// `shardproxy ring plan --srv --zone --add [--by-load]`.
pub fn run_plan(request: &PlanRequest<'_>, json: bool) -> ExitCode {
    finish((|| {
        let load = request.by_load.map(read_load).transpose()?;
        let text = read(request.zone)?;
        let label = request.zone.display().to_string();
        plan_report_by_load(
            request.srv,
            ZoneInput {
                label: &label,
                text: &text,
            },
            request.additions,
            request.tokens,
            json,
            load.as_ref(),
        )
    })())
}

/// The recorded load in the file `path`.
fn read_load(path: &Path) -> Result<RecordedLoad, ToolError> {
    load_file::parse(&path.display().to_string(), &read(path)?)
}

/// `shardproxy ring plan --balanced N`.
pub fn run_balanced(n: u64, json: bool) -> ExitCode {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match write_balanced(&mut stdout, n, json).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests;
