//! The report's text at a glance: checks grouped by family (from the id's prefix) with counts,
//! failures sharing one cause shown once with how many checks it explains, and a recap of the
//! causes before the count line. Pure: values in, text out (the caller knows the terminal).

use std::fmt::Write;

use crate::report::{ProbeResult, Report, Status};

/// How the text is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Only failing and skipped checks (the recap and the count line stay).
    pub failed_only: bool,
    /// Cut each line to this many characters with `…` (a terminal's width); `None`: whole lines.
    pub width: Option<usize>,
}

/// Families in the order the report shows them: (id prefix, name). Other prefixes follow,
/// named by their prefix, in the order they first appear.
const FAMILIES: &[(&str, &str)] = &[
    ("dhcp", "DHCP"),
    ("guest", "guests"),
    ("dns", "DNS"),
    ("nat", "NAT"),
    ("fw", "firewall"),
    // A TCP reachability probe is a firewall check.
    ("tcp", "firewall"),
    ("tls", "TLS"),
    ("https", "TLS"),
    ("route", "route"),
    ("swarm", "Swarm"),
];

/// The family of a check, from its id's first segment (`dns/guest:101/x` → `DNS`).
pub fn family(id: &str) -> &str {
    let prefix = id.split('/').next().unwrap_or(id);
    FAMILIES
        .iter()
        .find(|(p, _)| *p == prefix)
        .map_or(prefix, |(_, name)| name)
}

/// What a failure (or skip) says once its check-specific parts are taken out: the subject,
/// the id's own segments (names, addresses), the expectation (`expected X, `), the detail after
/// the first `: `, and every number. Two checks with the same key share one cause; a route
/// broken at a hop is keyed by that hop.
pub fn cause_key(r: &ProbeResult) -> Option<String> {
    let text = match &r.status {
        Status::Pass => return None,
        Status::Fail { evidence } => evidence.as_str(),
        Status::Skip { reason } => reason.as_str(),
    };
    let text = text.find("broken at hop").map_or(text, |i| &text[i..]);
    let text = match text.strip_prefix("expected ") {
        Some(rest) => rest.split_once(", ").map_or(text, |(_, seen)| seen),
        None => text,
    };
    let text = text.split(": ").next().unwrap_or(text);
    let mut key = text.replace(&r.subject.to_string(), "<subject>");
    let mut segments: Vec<&str> = r.id.split('/').skip(1).filter(|s| s.len() > 2).collect();
    // Longest first, so that a segment containing another is replaced whole.
    segments.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in segments {
        key = key.replace(s, "<id>");
    }
    Some(mask_numbers(&key))
}

/// Routes broken at a hop, `(route name, cause key)`: every failing check of that route (its
/// hops included) shares the route's cause, the hop where it breaks.
fn route_breaks(report: &Report) -> Vec<(&str, String)> {
    report
        .results
        .iter()
        .filter(|r| r.is_fail())
        .filter_map(|r| {
            let name = r.id.strip_prefix("route/")?;
            let key = cause_key(r)?;
            (!name.contains('/') && key.starts_with("broken at hop")).then_some((name, key))
        })
        .collect()
}

/// [`cause_key`], or the route's break for the checks of a broken route.
fn key_in(r: &ProbeResult, breaks: &[(&str, String)]) -> Option<String> {
    let route =
        r.id.strip_prefix("route/")
            .map(|rest| rest.split('/').next().unwrap_or(rest));
    match breaks.iter().find(|(name, _)| Some(*name) == route) {
        Some((_, key)) if r.is_fail() => Some(format!("route {key}")),
        _ => cause_key(r),
    }
}

/// Every run of digits becomes `#` (addresses, ports, durations, attempts).
fn mask_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// Checks of one family, and the failures (or skips) grouped by cause.
struct Group<'a> {
    first: &'a ProbeResult,
    others: Vec<&'a ProbeResult>,
}

/// Failing or skipped checks grouped by [`cause_key`], in order of first appearance.
fn by_cause<'a>(
    rs: impl Iterator<Item = &'a ProbeResult>,
    breaks: &[(&str, String)],
) -> Vec<Group<'a>> {
    let mut groups: Vec<(String, Group<'a>)> = Vec::new();
    for r in rs {
        let Some(key) = key_in(r, breaks) else {
            continue;
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.others.push(r),
            None => groups.push((
                key,
                Group {
                    first: r,
                    others: Vec::new(),
                },
            )),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Families present in `report`, in display order, each with its checks.
fn families(report: &Report) -> Vec<(&str, Vec<&ProbeResult>)> {
    let mut out: Vec<(&str, Vec<&ProbeResult>)> = Vec::new();
    for r in &report.results {
        let f = family(&r.id);
        match out.iter_mut().find(|(name, _)| *name == f) {
            Some((_, v)) => v.push(r),
            None => out.push((f, vec![r])),
        }
    }
    let rank = |f: &str| {
        FAMILIES
            .iter()
            .position(|(_, n)| *n == f)
            .unwrap_or(FAMILIES.len())
    };
    // Stable: unknown families keep their order of appearance.
    out.sort_by_key(|(f, _)| rank(f));
    out
}

fn tag(s: &Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Fail { .. } => "FAIL",
        Status::Skip { .. } => "SKIP",
    }
}

fn detail(s: &Status) -> &str {
    match s {
        Status::Pass => "",
        Status::Fail { evidence } => evidence,
        Status::Skip { reason } => reason,
    }
}

/// Cut `line` to `width` characters, the last one `…`.
fn fit(line: &str, width: Option<usize>) -> String {
    match width {
        Some(w) if w > 0 && line.chars().count() > w => {
            let mut s: String = line.chars().take(w - 1).collect();
            s.push('…');
            s
        }
        _ => line.to_string(),
    }
}

/// The grouped text (see the module header); ends with `N passed, M failed, K skipped`.
pub fn render(report: &Report, opts: &TextOptions) -> String {
    let subj_w = report
        .results
        .iter()
        .map(|r| r.subject.to_string().chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut lines: Vec<String> = Vec::new();
    let breaks = route_breaks(report);
    let row = |r: &ProbeResult| {
        format!(
            "{}  {:<subj_w$}  {:>7}  {}",
            tag(&r.status),
            r.subject.to_string(),
            format!("{}ms", r.duration.as_millis()),
            r.check
        )
    };
    for (name, rs) in families(report) {
        let pass = rs.iter().filter(|r| r.status == Status::Pass).count();
        let fail = rs.iter().filter(|r| r.is_fail()).count();
        let skip = rs.len() - pass - fail;
        if opts.failed_only && pass == rs.len() {
            continue;
        }
        lines.push(format!(
            "{name}: {} — {pass} pass, {fail} fail, {skip} skip",
            plural(rs.len(), "check")
        ));
        if !opts.failed_only {
            lines.extend(
                rs.iter()
                    .filter(|r| r.status == Status::Pass)
                    .map(|r| row(r)),
            );
        }
        let failing = rs.iter().copied().filter(|r| r.is_fail());
        let skipped = rs
            .iter()
            .copied()
            .filter(|r| matches!(r.status, Status::Skip { .. }));
        for g in by_cause(failing, &breaks)
            .into_iter()
            .chain(by_cause(skipped, &breaks))
        {
            lines.push(row(g.first));
            lines.extend(
                detail(&g.first.status)
                    .lines()
                    .map(|l| format!("      {l}")),
            );
            if !g.others.is_empty() {
                lines.push(format!(
                    "      explains {} checks (also {})",
                    g.others.len() + 1,
                    some_ids(&g.others)
                ));
            }
        }
    }
    lines.extend(recap(report));
    let c = report.counts;
    lines.push(format!(
        "{} passed, {} failed, {} skipped",
        c.pass, c.fail, c.skip
    ));
    let mut out = String::new();
    for l in lines {
        let _ = writeln!(out, "{}", fit(&l, opts.width));
    }
    out
}

/// `3 checks`, `1 check`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("{n} {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The first few ids of `rs`, then how many more (a cause can explain a hundred checks).
fn some_ids(rs: &[&ProbeResult]) -> String {
    const SHOWN: usize = 3;
    let ids: Vec<&str> = rs.iter().take(SHOWN).map(|r| r.id.as_str()).collect();
    match rs.len().saturating_sub(SHOWN) {
        0 => ids.join(", "),
        more => format!("{} and {more} more", ids.join(", ")),
    }
}

/// `Failures: C causes of M checks`, then one line per cause (across families) with its count.
fn recap(report: &Report) -> Vec<String> {
    let breaks = route_breaks(report);
    let groups = by_cause(report.results.iter().filter(|r| r.is_fail()), &breaks);
    if groups.is_empty() {
        return Vec::new();
    }
    let total: usize = groups.iter().map(|g| g.others.len() + 1).sum();
    let mut out = vec![format!(
        "Failures: {} of {}",
        plural(groups.len(), "cause"),
        plural(total, "failed check")
    )];
    for g in groups {
        let first_line = detail(&g.first.status).lines().next().unwrap_or_default();
        // A broken route's recap starts at its cause, which a terminal's width would cut off.
        let first_line = first_line
            .find("broken at hop")
            .map_or(first_line, |i| &first_line[i..]);
        let n = g.others.len() + 1;
        let what = if n == 1 {
            g.first.id.clone()
        } else {
            format!("{} (explains {n} checks)", g.first.id)
        };
        out.push(format!("  ✗ {what}: {first_line}"));
    }
    out
}
