//! `phoenix status`: desired vs actual, read-only. `--target pve` observes the node exactly as
//! `sync all` does (one inventory call, one config per managed guest, the firewall through the
//! API per scope, the managed host files other than the `.fw` files)
//! and derives the status from the plan (`phoenix_plan::status`); `--target lab` observes the lab
//! twin the same way (its node root, guest roots and firewall state). Nothing is written. Exit 0, or with
//! `--detailed-exitcode` 2 when anything differs.

use std::io::Write;

use phoenix_exec::shell::files::CountingShell;

use crate::cli::{OutputFormat, StatusArgs, StatusTarget};
use phoenix_exec::target::{SyncRequest, Target};

use crate::failure::report_failure;
use crate::session::connect;
use crate::{config, exit};

fn emit_json(v: &serde_json::Value) {
    let _ = crate::jsonout::print("status", v);
}

fn code(args: &StatusArgs, in_sync: bool) -> u8 {
    if args.detailed_exitcode && !in_sync {
        exit::CHANGES
    } else {
        exit::OK
    }
}

pub fn run(args: &StatusArgs) -> u8 {
    match args.target {
        StatusTarget::Pve => pve(args),
        StatusTarget::Lab => lab(args),
    }
}

fn pve(args: &StatusArgs) -> u8 {
    let session = match connect(&args.config, &args.pve) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let shell = CountingShell::new(session.shell.as_ref());
    let req = SyncRequest {
        request: phoenix_plan::Request::SyncAll,
        only: Default::default(),
        provision: false,
        dry_run: true,
    };
    let none = phoenix_exec::guest::provision::NoMaterials;
    let mut target = crate::sync_cmd::target(&session, &shell, None, &none, None);
    let planned = target
        .observe(&session.desired, &req)
        .and_then(|o| Ok((target.plan_with_firewall(&session.desired, &o, &req)?, o)));
    let (phoenix_exec::plan::TargetPlan { plan, firewall }, observed) = match planned {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    let mut st = phoenix_plan::status::status(&session.desired, &observed.observation.state, &plan);
    if let Some(fw) = &firewall {
        phoenix_plan::status::with_firewall(&mut st, fw, &plan);
    }
    let counts = session.client.counts();
    match args.output {
        OutputFormat::Json => emit_json(&serde_json::json!({
            "target": "pve", "status": st, "requests": counts,
        })),
        OutputFormat::Text => {
            let _ = write!(std::io::stdout(), "{}", phoenix_plan::status::text(&st));
        }
    }
    if counts.writes != 0 {
        let _ = writeln!(
            anstream::stderr(),
            "error: status made {}; this is a bug",
            crate::report::count(counts.writes as usize, "write request")
        );
        return exit::FAILED;
    }
    code(args, st.in_sync)
}

fn lab(args: &StatusArgs) -> u8 {
    if !phoenix_exec::root::is_root() {
        let _ = writeln!(
            anstream::stderr(),
            "error: `phoenix status --target lab` must run as root\n  hint: run it with sudo"
        );
        return exit::FAILED;
    }
    let d = match config::load(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let prefix = args.lab.prefix.as_str();
    let mut target = match phoenix_lab::target::LabTarget::new(
        &d,
        prefix,
        phoenix_render::RenderOptions::default(),
    ) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(anstream::stderr(), "error: {e}");
            return exit::FAILED;
        }
    };
    let req = SyncRequest {
        request: phoenix_plan::Request::SyncAll,
        only: Default::default(),
        provision: false,
        dry_run: true,
    };
    let planned = target
        .observe(&d, &req)
        .and_then(|o| Ok((target.plan(&d, &o, &req)?, o)));
    let (plan, observed) = match planned {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    let mut st = phoenix_plan::status::status(&d, &observed.state, &plan);
    if let Some(fw) = target.desired_firewall() {
        phoenix_plan::status::with_firewall(&mut st, fw, &plan);
    }
    match args.output {
        OutputFormat::Json => emit_json(&serde_json::json!({
            "target": "lab", "prefix": prefix, "status": st,
        })),
        OutputFormat::Text => {
            let _ = write!(std::io::stdout(), "{}", phoenix_plan::status::text(&st));
        }
    }
    code(args, st.in_sync)
}
