//! The text form of a plan: actions grouped by wave with reasons and changed keys (property
//! strings by field, see [`crate::fielddiff`]), unified diffs of files (coloured on request),
//! certificate decisions with their post-renewal actions (a manifest's bash string verbatim,
//! marked "not run"), kept certificates, notes, and the summary line. No I/O.

use std::fmt::Write;

use crate::action::{Action, Reason};
use crate::plan_types::{FileStatus, Plan};

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Render `plan` for a terminal (`color`) or a pipe.
pub fn text(plan: &Plan, color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("{code}{s}{RESET}")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    for (i, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}",
            paint(BOLD, &format!("wave {}: {}", i + 1, wave.name))
        );
        for a in &wave.actions {
            let mark = match a.effect() {
                crate::action::Effect::Create => paint(GREEN, "+"),
                crate::action::Effect::Change => paint(CYAN, "~"),
                crate::action::Effect::Delete => paint(RED, "-"),
                crate::action::Effect::Check => paint(CYAN, "?"),
            };
            let _ = writeln!(out, "  {mark} {a}");
            details(&mut out, a, &plan.node);
            if let Action::WriteFile { target, path, .. } = a {
                let diff = plan
                    .files
                    .iter()
                    .find(|f| f.file.target == *target && f.file.path == *path)
                    .and_then(|f| f.diff.as_deref());
                if let Some(d) = diff {
                    for line in d.lines() {
                        let painted = match line.chars().next() {
                            Some('+') if !line.starts_with("+++") => paint(GREEN, line),
                            Some('-') if !line.starts_with("---") => paint(RED, line),
                            Some('@') => paint(CYAN, line),
                            _ => line.to_string(),
                        };
                        let _ = writeln!(out, "      {painted}");
                    }
                }
            }
        }
    }
    if !plan.swarm.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint(
                BOLD,
                &format!("wave {}: docker swarm", plan.waves.len() + 1)
            )
        );
        for a in &plan.swarm {
            let mark = match a.effect() {
                crate::action::Effect::Create => paint(GREEN, "+"),
                crate::action::Effect::Delete => paint(RED, "-"),
                _ => paint(CYAN, "~"),
            };
            let _ = writeln!(out, "  {mark} {a}");
        }
    }
    if !plan.orphans.is_empty() {
        let ids: Vec<String> = plan.orphans.iter().map(|i| i.to_string()).collect();
        let _ = writeln!(
            out,
            "not in the configuration (left alone; `phoenix delete` removes them): {}",
            ids.join(", ")
        );
    }
    let kept: Vec<_> = plan
        .certificates
        .iter()
        .filter(|c| c.decision.as_ref().is_none_or(|d| d.is_keep()))
        .collect();
    if !kept.is_empty() {
        let _ = writeln!(out, "certificates without action:");
        for c in kept {
            let what = match &c.decision {
                Some(d) => d.to_string(),
                None => "not checked (no CA given)".to_string(),
            };
            let _ = writeln!(
                out,
                "  = certificate {} → guest {} {}: {what}",
                c.common_name, c.guest, c.cert_path
            );
        }
    }
    for n in &plan.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let unchanged = plan
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Unchanged)
        .count();
    if unchanged > 0 {
        let _ = writeln!(out, "{unchanged} managed files already up to date");
    }
    let _ = writeln!(out, "{}", plan.summary);
    out
}

fn details(out: &mut String, a: &Action, node: &str) {
    match a {
        Action::UpdateGuest {
            kind,
            reason: Reason::Differs { changes },
            ..
        } => {
            for c in changes {
                for line in crate::fielddiff::guest_key(*kind, c).to_string().lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        Action::WriteRawLxc {
            reason: Reason::Differs { changes },
            ..
        }
        | Action::Firewall {
            reason: Reason::Differs { changes },
            ..
        } => {
            for c in changes {
                let _ = writeln!(out, "      {c}");
            }
        }
        Action::WriteFile {
            reason: Reason::Differs { changes },
            ..
        } => {
            for c in changes.iter().filter(|c| c.key != "content") {
                let _ = writeln!(out, "      {c}");
            }
        }
        Action::CreateGuest {
            calls,
            image_import,
            ..
        } => {
            if let Some(img) = image_import {
                let _ = writeln!(out, "      import cloud image {img}");
            }
            for c in calls {
                let _ = writeln!(out, "      {} {}", c.endpoint.method(), c.path(node));
                for (k, v) in &c.params {
                    let _ = writeln!(out, "        {k} = {v}");
                }
            }
        }
        Action::Firewall {
            change: crate::firewall_api::FirewallChange::SetOptions { set, .. },
            reason: Reason::Missing,
            ..
        } => {
            for (k, v) in set {
                let _ = writeln!(out, "      {k} = {v}");
            }
        }
        Action::WriteRawLxc {
            lines,
            reason: Reason::Missing,
            ..
        } => {
            for l in lines {
                let _ = writeln!(out, "      {l}");
            }
        }
        Action::IssueCertificate {
            sans,
            key_path,
            owner,
            group,
            key_mode,
            post_renewal,
            post_renewal_command,
            ..
        } => {
            let _ = writeln!(out, "      SANs {}", sans.join(", "));
            let _ = writeln!(out, "      key {key_path} ({owner}:{group} {key_mode:04o})");
            for a in post_renewal {
                let _ = writeln!(out, "      then {a}");
            }
            if let Some(cmd) = post_renewal_command {
                // Verbatim, line by line; control characters escaped so a configuration
                // cannot drive the operator's terminal.
                for (i, line) in cmd.lines().enumerate() {
                    let line: String = line
                        .chars()
                        .map(|c| {
                            if c.is_control() && c != '\t' {
                                c.escape_default().to_string()
                            } else {
                                c.to_string()
                            }
                        })
                        .collect();
                    let label = if i == 0 {
                        "post_renewal_command (not run):"
                    } else {
                        "                               "
                    };
                    let _ = writeln!(out, "      {label} {line}");
                }
            }
        }
        _ => {}
    }
}
