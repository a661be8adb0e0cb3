//! `sync all --switch-network` and `sync confirm`: the staged host network files put live with
//! try-and-rollback (`phoenix_pve::netswitch`), in order: `/etc/network/interfaces`
//! (`ifreload -a`, `ifquery -c -a`), the NAT ruleset (`nft -c`, `nft -f`), the mesh dnsmasq file
//! (`dnsmasq --test`, restart); after each, the probes — the management address and the
//! gateway of the management bridge, `--probe-tcp` extras —, and the previous file restored
//! and reloaded when a probe fails or `--confirm-within` passes without `phoenix sync confirm
//! ID`. The first file that does not stick stops the rest.
//!
//! Safety (decision): the switch runs `ifreload` on the machine phoenix runs on, so it is only
//! allowed with the node's real root (`--host-root` unset or `/`), as root, and never in a
//! dry run. Over SSH a bad switch could cut the controller off before it rolls back; phoenix
//! refuses rather than risk it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use phoenix_pve::HostShell;
use phoenix_pve::netswitch::{
    Confirm, Probe, Side, Switch, SwitchOutcome, SwitchReport, confirm_flag_path, run_switch_with,
    switch_id,
};

use crate::cli::SyncAllArgs;
use crate::exit;
use crate::failure::error;
use crate::session::PveSession;

use phoenix_render::dnsmasq::DNSMASQ_PATH;
use phoenix_render::hostnet::{NAT_RULESET_PATH, NAT_TABLE};

/// Refuse what the switch must not do, before anything is observed or applied.
pub fn precheck(args: &SyncAllArgs) -> Result<(), u8> {
    if args.dry_run {
        error(
            "--switch-network with --dry-run: a dry run applies nothing",
            "drop one of the two flags",
        );
        return Err(exit::USAGE);
    }
    if args.pve.ssh.is_some() {
        error(
            "--switch-network with --ssh: the switch must run on the node, where a lost \
             connection cannot stop its rollback",
            "run phoenix on the Proxmox node itself for the switch (the rest works over --ssh)",
        );
        return Err(exit::USAGE);
    }
    if args
        .pve
        .host_root
        .as_deref()
        .is_some_and(|r| r != Path::new("/"))
    {
        error(
            "--switch-network runs `ifreload -a` on this machine, so it needs the node's real root",
            "run phoenix on the Proxmox node itself, without --host-root (or with --host-root /)",
        );
        return Err(exit::USAGE);
    }
    if !phoenix_exec::root::is_root() {
        error(
            "--switch-network must run as root (ifreload)",
            "run it with sudo on the node",
        );
        return Err(exit::USAGE);
    }
    Ok(())
}

/// The probes: the management bridge's own address and its gateway, plus the extras.
fn probes(session: &PveSession, args: &SyncAllArgs) -> Vec<Probe> {
    let mut out = Vec::new();
    if let Some(mgmt) = session.desired.bridges.first() {
        if let Some(a) = mgmt.address {
            out.push(Probe::ping(
                format!("management address {} on {}", a.addr(), mgmt.name),
                a.addr(),
                Side::Host,
            ));
        }
        if let Some(gw) = mgmt.gateway {
            out.push(Probe::ping(
                format!("gateway {gw} reachable"),
                gw,
                Side::Host,
            ));
        }
    }
    for t in &args.probe_tcp {
        out.push(Probe::tcp(format!("tcp {t}"), *t));
    }
    out
}

/// Switch the staged host network files in order — interfaces, NAT ruleset, dnsmasq — each
/// with try-and-rollback; stops after the first that does not stick. Files with nothing staged
/// are passed over.
pub fn switch(
    session: &PveSession,
    shell: &dyn HostShell,
    args: &SyncAllArgs,
) -> Result<Vec<SwitchReport>, u8> {
    let switches = [
        Switch::interfaces(),
        Switch::nat(NAT_RULESET_PATH, NAT_TABLE),
        Switch::dnsmasq(DNSMASQ_PATH, None),
    ];
    let mut reports = Vec::new();
    for sw in switches {
        match switch_one(session, shell, args, sw)? {
            Some(r) => {
                let stop = !r.switched() && !matches!(r.outcome, SwitchOutcome::Unchanged);
                reports.push(r);
                if stop {
                    break;
                }
            }
            None => continue,
        }
    }
    Ok(reports)
}

fn switch_one(
    session: &PveSession,
    shell: &dyn HostShell,
    args: &SyncAllArgs,
    sw: Switch,
) -> Result<Option<SwitchReport>, u8> {
    let live = sw.live_path.clone();
    let staged = match shell.read_file(&sw.staged_path) {
        Ok(Some(f)) => f,
        Ok(None) => {
            let _ = writeln!(
                anstream::stderr(),
                "network switch: nothing staged for {live}, the live file is current"
            );
            return Ok(None);
        }
        Err(e) => {
            error(
                &format!("cannot read {}: {e}", sw.staged_path),
                "check the host shell",
            );
            return Err(exit::FAILED);
        }
    };
    let id = switch_id(&live, &staged.content);
    let confirm = match args.confirm_within {
        Some(s) => Confirm::Within {
            window: Duration::from_secs(s),
            flag: confirm_flag_path(&id),
        },
        None => Confirm::Auto,
    };
    let sw = sw.with_probes(probes(session, args)).with_confirm(confirm);
    let mut stderr = anstream::stderr();
    let result = run_switch_with(shell, shell, &sw, &mut |st| {
        let mark = if st.ok { "✓" } else { "✗" };
        let _ = writeln!(
            stderr,
            "network switch {id} ({live}): {mark} {} {}",
            st.step, st.detail
        );
        if st.step == "await confirmation" {
            let _ = writeln!(
                stderr,
                "network switch {id}: confirm with `phoenix sync confirm {id}` or it is rolled back"
            );
        }
    });
    match result {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            error(
                &format!("network switch of {live} refused before any change: {e}"),
                "the live file is untouched; the staged one is still in place",
            );
            Err(exit::FAILED)
        }
    }
}

/// One line for the outcome.
pub fn outcome_line(r: &SwitchReport) -> String {
    match &r.outcome {
        SwitchOutcome::Switched { confirmed: true } => "switched, probed and confirmed".into(),
        SwitchOutcome::Switched { confirmed: false } => "switched and probed".into(),
        SwitchOutcome::Unchanged => "unchanged (staged = live)".into(),
        SwitchOutcome::RolledBack {
            cause, recovered, ..
        } => format!(
            "rolled back ({cause}); {}",
            if *recovered {
                "the previous state answers the probes again"
            } else {
                "the probes still fail after the rollback: check the node"
            }
        ),
        SwitchOutcome::RollbackFailed { cause, error } => {
            format!("ROLLBACK FAILED after {cause}: {error} — the node needs a human")
        }
    }
}

/// The text block of the sync report.
pub fn text(r: &SwitchReport) -> String {
    let mut s = format!(
        "\nnetwork switch {} of {}: {} in {} ms\n",
        r.id,
        r.live_path,
        outcome_line(r),
        r.elapsed.as_millis()
    );
    for p in &r.probes {
        s.push_str(&format!(
            "  probe {} {} ({}, {} ms){}\n",
            if p.passed { "passed" } else { "FAILED" },
            p.name,
            crate::report::count(p.attempts as usize, "attempt"),
            p.took.as_millis(),
            if p.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", p.detail)
            }
        ));
    }
    s
}

/// `phoenix sync confirm ID`: create the flag the waiting switch polls for.
pub fn confirm(id: &str) -> u8 {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        error(
            &format!("`{id}` is not a switch id"),
            "use the hexadecimal id `sync all --switch-network` printed",
        );
        return exit::USAGE;
    }
    let path = confirm_flag_path(id);
    let p = Path::new(&path);
    let written = p
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(p)
                .map(drop)
        });
    match written {
        Ok(()) => {
            let _ = writeln!(std::io::stdout(), "confirmed network switch {id} ({path})");
            exit::OK
        }
        Err(e) => {
            error(
                &format!("cannot write {path}: {e}"),
                "run it as root on the node where the switch waits",
            );
            exit::FAILED
        }
    }
}
