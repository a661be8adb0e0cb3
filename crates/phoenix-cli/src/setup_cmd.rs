//! `phoenix setup`: load, connect the node's host shell, then phoenix-host's observe → plan →
//! apply; this file only wires and prints (the plan and the journal to stdout).

use std::io::Write;

use phoenix_host::nthash::NtHash;
use phoenix_host::plan::PlanInputs;
use phoenix_host::{Scope, SetupPlan, Step};

use crate::cli::{OutputFormat, SetupArgs, SyncTarget};
use crate::{config, exit, session};

/// Exit code of a failed apply (ARCHITECTURE.md).
const APPLY_FAILED: u8 = 3;

pub fn run(args: &SetupArgs) -> u8 {
    let mut stderr = anstream::stderr();
    if matches!(args.target, SyncTarget::Lab) {
        let _ = writeln!(
            stderr,
            "error: the lab twin has no host setup yet\n  hint: `phoenix setup --target pve --host-root DIR` plans and writes the host's files under a scratch directory"
        );
        return exit::USAGE;
    }
    let desired = match config::load(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let setup = &desired.host_setup;
    let shell = session::host_shell(
        args.host_root.as_ref(),
        args.ssh.as_ref(),
        args.ssh_port,
        args.ssh_identity.as_ref(),
        args.ssh_known_hosts.as_ref(),
    );
    let scope = match &args.host_root {
        Some(r) if r != std::path::Path::new("/") => Scope::Scratch(r.display().to_string()),
        _ => Scope::Live,
    };
    let mut password = None;
    if let Some(secret) = setup.samba.as_ref().and_then(|s| s.password.as_ref()) {
        match config::resolve_secret(secret) {
            Ok(p) => password = Some(p),
            Err(e) => {
                let _ = writeln!(
                    stderr,
                    "error: samba.password: {e}\n  hint: set the environment variable or file `samba.password` names ({secret})"
                );
                return exit::USAGE;
            }
        }
    }
    let inputs = PlanInputs {
        samba_password: password.as_deref().map(NtHash::of),
    };
    let observed = match phoenix_host::observe(shell.as_ref(), setup, scope) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(
                stderr,
                "error: observing the host: {e}\n  hint: check --host-root or --ssh"
            );
            return APPLY_FAILED;
        }
    };
    let plan = phoenix_host::plan(setup, &observed, &inputs);
    let json = matches!(args.output, OutputFormat::Json);
    if args.dry_run {
        print(&plan, None, json);
        return exit::OK;
    }
    let journal = phoenix_host::apply(shell.as_ref(), &plan, password.as_deref());
    if let Some(p) = password.as_mut() {
        p.iter_mut().for_each(|b| *b = 0);
    }
    print(&plan, Some(&journal), json);
    if journal.failed() {
        let _ = writeln!(
            stderr,
            "error: phoenix setup failed (the journal says where)\n  hint: fix the cause and run `phoenix setup` again: it redoes only what still differs"
        );
        return APPLY_FAILED;
    }
    exit::OK
}

fn print(plan: &SetupPlan, journal: Option<&phoenix_host::Journal>, json: bool) {
    let mut out = std::io::stdout();
    let skipped = plan.steps.len() - plan.changes();
    if json {
        let entries: Vec<serde_json::Value> = journal
            .map(|j| {
                j.entries
                    .iter()
                    .map(|(step, o)| {
                        serde_json::json!({"step": step, "outcome": o.label(), "detail": o.detail()})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let value = serde_json::json!({
            "changes": plan.changes(),
            "skipped": skipped,
            "plan": plan.steps,
            "journal": journal.map(|_| entries),
        });
        let _ = writeln!(out, "{value:#}");
        return;
    }
    let _ = writeln!(
        out,
        "phoenix setup: {} changes, {skipped} skipped",
        plan.changes()
    );
    match journal {
        None => {
            for step in &plan.steps {
                let mark = if matches!(step, Step::Skip { .. }) {
                    "-"
                } else {
                    "+"
                };
                let _ = writeln!(out, "  {mark} {step}");
            }
        }
        Some(j) => {
            for (step, outcome) in &j.entries {
                let detail = match outcome.detail() {
                    Some(d)
                        if !matches!(outcome, phoenix_exec::journal::Outcome::Skipped { .. }) =>
                    {
                        format!(": {d}")
                    }
                    _ => String::new(),
                };
                let _ = writeln!(out, "  {:<11} {step}{detail}", outcome.label());
            }
        }
    }
}
