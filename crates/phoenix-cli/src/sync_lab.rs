//! `phoenix sync all --target lab`: the one pipeline (`phoenix_exec::target::sync_all`) on
//! the lab twin ([`phoenix_lab::target::LabTarget`]): the node's plan, applied by the lab's
//! executor, then `phoenix verify`'s lab checks. Root only.
//! Stdout: the plan, the journal and the verification table (or one JSON document);
//! stderr: progress, timings, errors with a hint. Exit 0 when the report passes (a dry run:
//! 0, or 2 for changes with --detailed-exitcode), 1 when a check fails or the run is refused,
//! 3 when applying failed (docs/exit-codes.md).

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Instant;

use phoenix_exec::journal::Journal;
use phoenix_exec::target::{SyncRequest, SyncRun};
use phoenix_lab::LabError;
use phoenix_lab::target::LabTarget;
use phoenix_plan::Request;
use phoenix_render::RenderOptions;

use crate::cli::{OutputFormat, SyncAllArgs};
use crate::failure::error;
use crate::progress::Progress;
use crate::workflow::Mode;
use crate::{config, exit};

fn journal_json(j: &Journal<LabError>) -> serde_json::Value {
    let entries: Vec<_> = j
        .entries
        .iter()
        .map(|e| {
            serde_json::json!({"wave": e.wave, "action": e.action,
                "outcome": e.outcome.label(), "detail": e.outcome.detail()})
        })
        .collect();
    serde_json::json!({"success": j.is_success(), "failed_wave": j.failed_wave,
        "entries": entries})
}

fn journal_text(j: &Journal<LabError>) -> String {
    let mut s = String::from("\njournal:\n");
    for e in &j.entries {
        let detail = e
            .outcome
            .detail()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        s.push_str(&format!(
            "  [{}] {} → {}{detail}\n",
            e.wave,
            e.action,
            e.outcome.label()
        ));
    }
    s
}

pub fn run(args: &SyncAllArgs) -> u8 {
    run_mode(args, &Mode::Sync)
}

/// The pipeline on the lab, for `mode` (`sync all`, `plan --target lab`, `observe`).
pub(crate) fn run_mode(args: &SyncAllArgs, mode: &Mode<'_>) -> u8 {
    let dry_run = mode.dry(args);
    let saved = match crate::workflow::read_saved(args) {
        Ok(s) => s,
        Err(code) => return code,
    };
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
    let _lock = if dry_run {
        None
    } else {
        match crate::locking::lab(prefix, "sync all --target lab", args.lock.lock_timeout) {
            Ok(g) => Some(g),
            Err(code) => return code,
        }
    };
    let d = match config::load(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let start = Instant::now();
    let opts = RenderOptions {
        node: args.pve.node.clone().unwrap_or_else(|| "pve".into()),
    };
    let mut target = match LabTarget::new(&d, prefix, opts) {
        Ok(t) => t,
        Err(e) => {
            error(
                &format!("lab {prefix}: {e}"),
                &e.hint().unwrap_or_else(|| {
                    "`phoenix validate` shows the configuration's findings".into()
                }),
            );
            return exit::FAILED;
        }
    };
    if !dry_run && let Err(e) = target.prepare(&d) {
        error(
            &format!("lab {prefix}: {e}"),
            "the lab's state lives under /run/phoenix-lab; `phoenix lab down` clears it",
        );
        return exit::APPLY_FAILED;
    }
    let req = SyncRequest {
        request: Request::SyncAll,
        only: args.only.iter().copied().collect::<BTreeSet<_>>(),
        provision: args.provision,
        dry_run,
    };
    let progress = Progress::new();
    progress.step(format!("observing lab {prefix}"));
    // The lab never asks (a rehearsal on this machine); a saved plan must still hold.
    let mut gate = crate::workflow::gate(args, saved.as_ref(), &req, false, false);
    let run = phoenix_exec::target::sync_all_gated(
        &mut target,
        &d,
        &req,
        None,
        &mut |stage| {
            progress.step(format!("lab {prefix}: {stage}"));
        },
        Some(&mut gate),
    );
    let SyncRun {
        plan,
        journal,
        observed,
        ..
    } = match run {
        Ok(r) => r,
        Err(f) => {
            progress.finish();
            return crate::workflow::report_failure(&f, dry_run);
        }
    };
    let json = matches!(args.output, OutputFormat::Json);
    let color = crate::colour::stdout();
    let Some(journal) = journal else {
        progress.finish();
        if !matches!(mode, Mode::Sync) {
            let export = phoenix_exec::target::Target::export(&target, &observed);
            return crate::workflow::finish_dry(mode, args, &req, &plan, &export);
        }
        if json {
            let v = serde_json::json!({"target": "lab", "prefix": prefix, "plan": plan,
                "journal": null, "verify": null});
            let _ = crate::jsonout::print("sync", &v);
        } else {
            let _ = write!(
                std::io::stdout(),
                "{}\ndry run: nothing applied\n",
                phoenix_plan::display::text(&plan, color)
            );
        }
        return crate::workflow::dry_exit(&plan, args.detailed_exitcode);
    };
    if !journal.is_success() {
        progress.finish();
        if json {
            let v = serde_json::json!({"target": "lab", "prefix": prefix, "plan": plan,
                "journal": journal_json(&journal), "notes": target.notes, "verify": null});
            let _ = crate::jsonout::print("sync", &v);
        } else {
            let _ = write!(
                std::io::stdout(),
                "{}{}",
                phoenix_plan::display::text(&plan, color),
                journal_text(&journal)
            );
        }
        let wave = journal.failed_wave.as_deref().unwrap_or("?");
        let cause = journal
            .failures()
            .next()
            .map(|(a, e)| format!(": {a}: {e}"))
            .unwrap_or_default();
        error(
            &format!("apply to lab {prefix} stopped in `{wave}`{cause}"),
            "the journal above says what was done; fix the cause and run `phoenix sync all --target lab` again",
        );
        return exit::APPLY_FAILED;
    }
    let changed = journal
        .entries
        .iter()
        .filter(|e| e.outcome.label() == "done")
        .count();
    progress.done(format!(
        "lab {prefix}: {} applied in {} ms",
        crate::report::count(changed, "action"),
        start.elapsed().as_millis()
    ));
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
            "journal": journal_json(&journal), "swarm_applied": target.swarm_changes,
            "notes": target.notes, "verify": report});
        let _ = crate::jsonout::print("sync", &v);
    } else {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{}", phoenix_plan::display::text(&plan, color));
        if !plan.is_empty() {
            let _ = write!(out, "{}", journal_text(&journal));
        }
        for c in &target.swarm_changes {
            let _ = writeln!(out, "  [docker swarm] {c}");
        }
        for n in &target.notes {
            let _ = writeln!(out, "lab: {n}");
        }
        let _ = write!(out, "\n{}", report.render_text());
    }
    let _ = writeln!(
        anstream::stderr(),
        "sync lab {prefix}: {} applied; verify: {} in {} ms; total {} ms",
        crate::report::count(changed, "action"),
        crate::report::count(report.results.len(), "check"),
        took.as_millis(),
        start.elapsed().as_millis()
    );
    if report.ok() { exit::OK } else { exit::FAILED }
}
