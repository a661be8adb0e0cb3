//! `phoenix sync all --target lab`: observe the lab twin, print the plan, apply it (progress on
//! stderr), then run `phoenix verify`'s lab checks and print the report. Root only.
//! Stdout: the plan, the applied changes and the verification table (or one JSON document);
//! stderr: progress, timings, errors with a hint. Exit 0 when the report passes, 1 when a
//! check fails, 3 when applying failed.

use std::io::Write;
use std::time::Instant;

use phoenix_lab::converge::{self, LabChange, LabPlan};

use crate::cli::{OutputFormat, SyncAllArgs};
use crate::progress::Progress;
use crate::{config, exit};

/// Apply failure (ARCHITECTURE.md).
const APPLY_FAILED: u8 = 3;

fn error(message: &str, hint: &str) {
    let _ = writeln!(anstream::stderr(), "error: {message}\n  hint: {hint}");
}

fn change_line(c: &LabChange) -> String {
    format!("{:<13} {} — {}", c.action.to_string(), c.subject, c.reason)
}

fn plan_text(p: &LabPlan) -> String {
    let mut s = format!("lab {}: plan\n", p.prefix);
    for c in &p.changes {
        s.push_str(&format!("  ~ {}\n", change_line(c)));
    }
    for n in &p.not_modelled {
        s.push_str(&format!("  = {n}\n"));
    }
    if p.changes.is_empty() {
        s.push_str(&format!(
            "No changes: the lab matches the configuration ({} observed in sync).\n",
            p.in_sync
        ));
    } else {
        s.push_str(&format!(
            "{} to change, {} in sync.\n",
            p.changes.len(),
            p.in_sync
        ));
    }
    s
}

pub fn run(args: &SyncAllArgs) -> u8 {
    if !phoenix_exec::root::is_root() {
        error(
            "`phoenix sync all --target lab` must run as root (it creates network namespaces)",
            "run it with sudo; everything it makes is named after --prefix and removed by `phoenix lab down`",
        );
        return exit::FAILED;
    }
    let prefix = args.lab.prefix.as_str();
    if let Err(e) = phoenix_lab::validate_prefix(prefix) {
        error(&e.to_string(), "prefixes are 1-6 characters of [a-z0-9]");
        return exit::USAGE;
    }
    let d = match config::load(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let start = Instant::now();
    let progress = Progress::new();
    progress.step(format!("observing lab {prefix}"));
    let plan = match converge::plan(&d, prefix) {
        Ok(p) => p,
        Err(e) => {
            progress.finish();
            error(
                &format!("observe lab {prefix}: {e}"),
                &e.hint()
                    .unwrap_or_else(|| "`phoenix lab status` shows what is up".into()),
            );
            return exit::FAILED;
        }
    };
    let json = matches!(args.output, OutputFormat::Json);
    if !json {
        progress.done(format!(
            "observed lab {prefix}: {} to change",
            plan.changes.len()
        ));
        let _ = write!(std::io::stdout(), "{}", plan_text(&plan));
    }
    if args.dry_run {
        progress.finish();
        if json {
            let v = serde_json::json!({"target": "lab", "prefix": prefix, "plan": plan,
                "applied": null, "verify": null});
            let _ = writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            );
        } else {
            let _ = writeln!(std::io::stdout(), "\ndry run: nothing applied");
        }
        return if plan.is_empty() {
            exit::OK
        } else {
            exit::CHANGES
        };
    }
    let total = plan.changes.len();
    let applied = converge::apply(&d, &plan, &mut |i, c| {
        progress.step(format!("[{}/{total}] {} {}", i + 1, c.action, c.subject));
    });
    let applied = match applied {
        Ok(a) => a,
        Err(e) => {
            progress.finish();
            error(
                &format!("apply to lab {prefix}: {e}"),
                &e.hint().unwrap_or_else(|| {
                    "run `phoenix sync all --target lab` again: an unfinished run is rebuilt".into()
                }),
            );
            return APPLY_FAILED;
        }
    };
    if total > 0 {
        progress.done(format!(
            "applied {total} change(s) in {} ms",
            applied.elapsed_ms
        ));
    }
    // Opt-in, as on a node: the provision steps against each guest's namespace and file root.
    let provisioned = if args.provision {
        progress.step(format!("provisioning inside the guests of lab {prefix}"));
        match phoenix_lab::provision::run(&d, prefix, &Default::default()) {
            Ok(r) => {
                progress.done(format!(
                    "provisioning: {} applied, {} kept, {} skipped (provided by the lab)",
                    r.applied(),
                    r.kept(),
                    r.skipped()
                ));
                Some(r)
            }
            Err(e) => {
                progress.finish();
                error(
                    &format!("provision lab {prefix}: {e}"),
                    "run `phoenix sync all --target lab --provision` again",
                );
                return APPLY_FAILED;
            }
        }
    } else {
        None
    };
    progress.step(format!("verifying lab {prefix}"));
    let verified = crate::verify_cmd::lab_report(&d, prefix, &args.config);
    progress.finish();
    let (report, took) = match verified {
        Ok(r) => r,
        Err((msg, hint)) => {
            error(&msg, &hint);
            return exit::FAILED;
        }
    };
    if json {
        let v = serde_json::json!({"target": "lab", "prefix": prefix, "plan": plan,
            "applied": applied, "provision": provisioned, "verify": report});
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        );
    } else {
        let mut out = std::io::stdout().lock();
        if total > 0 {
            for c in &applied.applied {
                let _ = writeln!(out, "applied: {}", change_line(c));
            }
        }
        if let Some(p) = &provisioned {
            let _ = writeln!(out, "\nprovisioning inside guests:\n{p}");
        }
        let _ = write!(out, "\n{}", report.render_text());
    }
    let _ = writeln!(
        anstream::stderr(),
        "sync lab {prefix}: {total} change(s) applied; verify: {} checks in {} ms; total {} ms",
        report.results.len(),
        took.as_millis(),
        start.elapsed().as_millis()
    );
    if provisioned.as_ref().is_some_and(|p| p.failed() > 0) {
        return APPLY_FAILED;
    }
    if report.ok() { exit::OK } else { exit::FAILED }
}
