//! `phoenix lab up|down|status|exec`: wiring to `phoenix-lab` and output. Root only.
//! Data (reports, status) on stdout, errors with a `hint:` on stderr.

use std::io::Write;

use phoenix_lab::LabError;
use phoenix_lab::status::LabStatus;
use phoenix_lab::topology::NsRole;
use serde::Serialize;

use crate::cli::{LabArgs, LabCommand, OutputFormat};
use crate::{config, exit};

pub fn run(args: &LabArgs) -> u8 {
    if let Err(e) = phoenix_lab::require_root() {
        return fail(&e);
    }
    match &args.command {
        LabCommand::Up {
            config: dir,
            prefix,
            recreate,
            network_only,
            lock,
            output,
        } => {
            let _lock = match crate::locking::lab(&prefix.prefix, "lab up", lock.lock_timeout) {
                Ok(g) => g,
                Err(code) => return code,
            };
            let d = match config::load(dir) {
                Ok(d) => d,
                Err(code) => return code,
            };
            let opts = phoenix_lab::UpOptions {
                prefix: prefix.prefix.clone(),
                recreate: *recreate,
            };
            let scope = if *network_only {
                phoenix_lab::Scope::NetworkOnly
            } else {
                phoenix_lab::Scope::Full
            };
            match phoenix_lab::up_with(&d, &opts, scope) {
                Ok(r) => emit(*output, &r, || {
                    let mut s = format!(
                        "lab {} up: {} namespaces, {} veth pairs, {} macvlans in {} ms\nstate: {}\n",
                        r.prefix,
                        r.namespaces,
                        r.veths,
                        r.macvlans,
                        r.elapsed_ms,
                        r.state_dir.display()
                    );
                    for svc in &r.services.services {
                        s.push_str(&format!("service {:<12} in {}\n", svc.name, svc.ns));
                    }
                    for l in &r.services.leases {
                        s.push_str(&format!(
                            "lease   guest {} {} {}\n",
                            l.guest,
                            l.nic,
                            l.address.as_deref().unwrap_or("(none)")
                        ));
                    }
                    s
                }),
                Err(e) => fail_changing(&e),
            }
        }
        LabCommand::Down {
            prefix,
            lock,
            output,
        } => match crate::locking::lab(&prefix.prefix, "lab down", lock.lock_timeout)
            .map(|_lock| phoenix_lab::down(&prefix.prefix))
        {
            Err(code) => code,
            Ok(r) => match r {
                Ok(r) => emit(*output, &r, || {
                    format!(
                        "lab {} down: {} namespaces, {} /etc/netns dirs, {} processes stopped{}\n",
                        r.prefix,
                        r.namespaces.len(),
                        r.etc_dirs.len(),
                        r.killed.len(),
                        if r.state_removed {
                            ", state removed"
                        } else {
                            ""
                        }
                    )
                }),
                Err(e) => fail_changing(&e),
            },
        },
        LabCommand::Status { prefix, output } => match phoenix_lab::status(&prefix.prefix) {
            Ok(s) => {
                let code = emit(*output, &s, || status_text(&s));
                if code == exit::OK && !s.is_complete() {
                    exit::FAILED
                } else {
                    code
                }
            }
            Err(e) => fail(&e),
        },
        LabCommand::Exec {
            prefix,
            guest,
            argv,
        } => match phoenix_lab::exec(&prefix.prefix, guest, argv) {
            Ok(status) => status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(exit::FAILED),
            Err(e) => fail(&e),
        },
    }
}

/// A run that changes the lab failed: 1 when it was refused before changing anything (the
/// prefix, root, a lab already up, a configuration the lab cannot build), 3 otherwise.
fn fail_changing(e: &LabError) -> u8 {
    let code = fail(e);
    match e {
        LabError::InvalidPrefix(_)
        | LabError::NotRoot
        | LabError::AlreadyUp { .. }
        | LabError::Nic { .. }
        | LabError::NoManagementBridge
        | LabError::UnknownGuest { .. } => code,
        _ => exit::APPLY_FAILED,
    }
}

fn fail(e: &LabError) -> u8 {
    match e.hint() {
        Some(h) => crate::failure::error(&e.to_string(), &h),
        None => {
            crate::jsonout::note_error(&e.to_string(), "");
            let _ = writeln!(anstream::stderr(), "error: {e}");
        }
    }
    exit::FAILED
}

fn emit<T: Serialize>(format: OutputFormat, value: &T, text: impl FnOnce() -> String) -> u8 {
    let body = match format {
        OutputFormat::Json => match crate::jsonout::print("lab", value) {
            Ok(()) => String::new(),
            Err(e) => {
                let _ = writeln!(anstream::stderr(), "error: cannot serialise: {e}");
                return exit::FAILED;
            }
        },
        OutputFormat::Text => text(),
    };
    let _ = write!(std::io::stdout(), "{body}");
    exit::OK
}

fn status_text(s: &LabStatus) -> String {
    use std::fmt::Write as _;
    if s.is_empty() {
        return format!("no lab with prefix {}\n", s.prefix);
    }
    let mut out = format!(
        "lab {}{}\n",
        s.prefix,
        if s.state_recorded {
            ""
        } else {
            " (no state file: leftovers of a crashed run? `phoenix lab down` removes them)"
        }
    );
    for n in &s.namespaces {
        let role = match &n.role {
            Some(NsRole::Hypervisor) => "hypervisor".to_string(),
            Some(NsRole::Wan) => "wan".to_string(),
            Some(NsRole::Guest { id, name }) => format!("guest {id} {name}"),
            None => "unrecorded".to_string(),
        };
        let state = if n.present { "present" } else { "MISSING" };
        let _ = writeln!(out, "{:<16} {role:<28} {state}", n.name);
        for l in &n.links {
            let master = l
                .master
                .as_ref()
                .map(|m| format!(" master {m}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<12} {:<5} {:<8} {}{master}",
                l.name,
                if l.up { "up" } else { "DOWN" },
                l.operstate,
                l.addresses.join(" ")
            );
        }
        for m in &n.missing_links {
            let _ = writeln!(out, "  {m:<12} MISSING");
        }
    }
    for svc in &s.services {
        let _ = writeln!(
            out,
            "service {:<12} {:<16} pid {:<8} {}",
            svc.name,
            svc.ns,
            svc.pid.map_or("-".to_string(), |p| p.to_string()),
            if svc.alive { "alive" } else { "DEAD" }
        );
    }
    for l in &s.leases {
        let _ = writeln!(
            out,
            "lease   guest {} {} {} {}",
            l.lease.guest,
            l.lease.nic,
            l.lease.address.as_deref().unwrap_or("(none)"),
            if l.held { "held" } else { "NOT HELD" }
        );
    }
    for d in &s.etc_dirs {
        let _ = writeln!(out, "/etc/netns/{d}");
    }
    out
}
