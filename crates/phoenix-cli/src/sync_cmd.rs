//! `phoenix sync all --target pve`: observe the node (guests and the firewall through the
//! API, host files through the host shell), plan, print the plan, apply it and print the journal with the
//! request and write counters. Does network and file I/O (through `phoenix-pve`).

use std::collections::BTreeSet;
use std::io::Write;

use phoenix_exec::shell::files::CountingShell;
use phoenix_exec::target::{SwarmPhase, SyncRequest, SyncRun};
use phoenix_plan::Request;
use phoenix_plan::plan::Plan;
use phoenix_plan::subsystem::Subsystem;
use phoenix_pve::apply::{Journal, Outcome};
use phoenix_pve::target::PveTarget;

use crate::cli::{ApplyArgs, OutputFormat, SyncAllArgs, SyncCommand, SyncTarget};
use crate::failure::error;
use crate::session::{PveSession, connect};
use crate::workflow::Mode;
use crate::{config, exit};

pub fn run(command: &SyncCommand) -> u8 {
    match command {
        SyncCommand::All(args) => sync_all(args),
        SyncCommand::Confirm { id } => crate::netswitch_cmd::confirm(id),
    }
}

/// The node of `s` as a [`PveTarget`] over `shell`, issuing with `ca` when one was opened.
pub(crate) fn target<'a>(
    s: &'a PveSession,
    shell: &'a dyn phoenix_pve::HostShell,
    args: Option<&SyncAllArgs>,
    materials: &'a dyn phoenix_exec::guest::provision::Materials,
    ca: Option<&'a phoenix_pki::CaStore>,
) -> PveTarget<'a> {
    let pki = ca.and_then(|ca| {
        phoenix_plan::PkiContext::from_ca(ca.public(), &s.desired, Default::default()).ok()
    });
    PveTarget {
        client: &s.client,
        shell,
        opts: s.opts.clone(),
        parallelism: args.map_or(4, |a| a.parallelism),
        image_store: args.and_then(|a| a.image_store.clone()),
        materials,
        issuer: ca.map(|ca| ca as &(dyn phoenix_pki::LeafIssuer + Sync)),
        pki,
    }
}

/// The CA of `--ca-dir`, unlocked with its passphrase (`--passphrase-env`/`--passphrase-file`
/// or the configuration's `step_ca.password`) when its keys are encrypted.
fn open_ca(
    d: &phoenix_model::DesiredState,
    args: &SyncAllArgs,
) -> Result<Option<phoenix_pki::CaStore>, u8> {
    let Some(dir) = &args.ca_dir else {
        return Ok(None);
    };
    let pass = crate::ca_cmd::passphrase_secret(&args.passphrase, d.step_ca.password.as_ref())
        .map(|s| config::resolve_secret(&s))
        .transpose()
        .map_err(|e| {
            error(
                &format!("the CA passphrase: {e}"),
                "check --passphrase-env/--passphrase-file or step_ca.password",
            );
            exit::USAGE
        })?;
    phoenix_pki::CaStore::open(dir, pass.map(phoenix_pki::Passphrase::new))
        .map(Some)
        .map_err(|e| {
            error(
                &format!("CA directory {}: {e}", dir.display()),
                "`phoenix ca init --ca-dir DIR` makes one; an encrypted CA needs its passphrase",
            );
            exit::USAGE
        })
}

fn sync_all(args: &SyncAllArgs) -> u8 {
    if matches!(args.target, SyncTarget::Lab) {
        if args.only.contains(&Subsystem::HostSetup) {
            error(
                "the lab twin has no host setup yet",
                "`--only host-setup` runs on --target pve (a scratch --host-root writes the files only)",
            );
            return exit::USAGE;
        }
        return crate::sync_lab::run(args);
    }
    run_pve(args, &Request::SyncAll, &Mode::Sync)
}

/// `phoenix apply --target pve VERB [ID]`: the bash verbs, acted on a node.
pub fn apply_verb(a: &ApplyArgs) -> u8 {
    if matches!(a.sync.target, SyncTarget::Lab) {
        error(
            "the verbs act on a Proxmox VE node; the lab twin is converged as a whole",
            "use `phoenix sync all --target lab`, or `phoenix apply --target pve …`",
        );
        return exit::USAGE;
    }
    let request = crate::cli::request_of(Some(&a.verb));
    if a.sync.switch_network && request != Request::SyncAll {
        error(
            "--switch-network belongs to `sync all` (the host network is not part of a guest verb)",
            "run `phoenix sync all --target pve --switch-network`",
        );
        return exit::USAGE;
    }
    run_pve(&a.sync, &request, &Mode::Sync)
}

/// step-ca's CA files for the provision steps from `--ca-dir` (with the passphrase and the
/// provisioner key), and notes on what is left out; none without `--provision` or on a dry run.
fn load_materials(
    d: &phoenix_model::DesiredState,
    args: &SyncAllArgs,
    dry_run: bool,
) -> Result<(crate::materials::MaterialMap, Vec<String>), u8> {
    let (Some(dir), true) = (&args.ca_dir, args.provision && !dry_run) else {
        return Ok((crate::materials::MaterialMap::new(), Vec::new()));
    };
    let pass = crate::ca_cmd::passphrase_secret(&args.passphrase, d.step_ca.password.as_ref())
        .map(|s| config::resolve_secret(&s))
        .transpose();
    let step_ca_password = d
        .step_ca
        .password
        .as_ref()
        .map(config::resolve_secret)
        .transpose();
    pass.and_then(|p| step_ca_password.map(|s| (p, s)))
        .and_then(|(p, s)| {
            crate::materials::from_ca_dir(
                d,
                dir,
                p.as_deref(),
                s.as_deref(),
                args.provisioner_key.as_deref(),
            )
        })
        .map_err(|e| {
            error(
                &format!("step-ca material: {e}"),
                "check --ca-dir, the passphrase (--passphrase-env/--passphrase-file or step_ca.password) and --provisioner-key",
            );
            exit::USAGE
        })
}

/// The pipeline on a node, for `mode` (`sync all`/`apply`, `plan --target pve`, `observe`).
pub(crate) fn run_pve(args: &SyncAllArgs, request: &Request, mode: &Mode<'_>) -> u8 {
    let dry_run = mode.dry(args);
    let saved = match crate::workflow::read_saved(args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if args.switch_network
        && let Err(code) = crate::netswitch_cmd::precheck(args)
    {
        return code;
    }
    let mut only: BTreeSet<Subsystem> = args.only.iter().copied().collect();
    if only.remove(&Subsystem::HostSetup) {
        // The host's own setup: phoenix-host's plan, the same steps as `phoenix setup`.
        let setup = crate::setup_cmd::SetupRequest {
            pve: &args.pve,
            wipe_disks: args.wipe_disks,
            remove_dropped_storage: args.remove_dropped_storage,
            dry_run: args.dry_run,
            json: matches!(args.output, crate::cli::OutputFormat::Json),
            detailed: args.detailed_exitcode && only.is_empty(),
            ask: !args.yes,
            lock_timeout: args.lock.lock_timeout,
            command: "sync all --target pve --only host-setup",
        };
        let code = crate::setup_cmd::host_setup(&args.config, &setup);
        if code != exit::OK || only.is_empty() || *request != Request::SyncAll {
            return code;
        }
    }
    if only.len() == 1 && only.contains(&Subsystem::Swarm) && *request == Request::SyncAll {
        // The Swarm alone: its engines, not the Proxmox API.
        return swarm_only(args);
    }
    let session = match connect(&args.config, &args.pve) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let _lock = if dry_run {
        None
    } else {
        let command = match request {
            Request::SyncAll => "sync all --target pve".to_string(),
            other => format!("apply --target pve {other:?}"),
        };
        match crate::locking::node(
            session.shell.as_ref(),
            &session.opts.node,
            &command,
            args.lock.lock_timeout,
        ) {
            Ok(g) => Some(g),
            Err(code) => return code,
        }
    };
    let shell = CountingShell::new(session.shell.as_ref());
    let swarm_in_scope =
        (only.is_empty() || only.contains(&Subsystem::Swarm)) && *request == Request::SyncAll;
    let client_in_scope =
        swarm_in_scope || (only.contains(&Subsystem::Pki) && *request == Request::SyncAll);
    // step-ca's CA files for the provision steps, from `--ca-dir` (else skipped, said so).
    let (materials, material_notes) = match load_materials(&session.desired, args, dry_run) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let req = SyncRequest {
        request: request.clone(),
        only,
        provision: args.provision,
        dry_run,
    };
    let ca = match open_ca(&session.desired, args) {
        Ok(ca) => ca,
        Err(code) => return code,
    };
    // phoenix's own credential beside its CA (not on the node), before the Swarm's engines
    // are reached with it.
    let client_note = if client_in_scope {
        match crate::swarm_cmd::engine_client(&session.desired, args, ca.as_ref(), dry_run) {
            Ok(n) => n,
            Err(code) => return code,
        }
    } else {
        None
    };
    let swarm_ctx = if swarm_in_scope {
        swarm_context(&session.desired, args)
    } else {
        None
    };
    let mut target = target(&session, &shell, Some(args), &materials, ca.as_ref());
    let swarm_view = swarm_ctx.as_ref().map(|c| c.swarm());
    let swarm = swarm_view.as_ref().map(|s| s as &dyn SwarmPhase);
    // The requests of observing alone: counted when the apply starts (a dry run never does).
    let mut observe_counts = None;
    // A node asks before it changes (sync all always, apply when it deletes or stops).
    let mut gate = crate::workflow::gate(
        args,
        saved.as_ref(),
        &req,
        !dry_run,
        *request != Request::SyncAll,
    );
    let run = phoenix_exec::target::sync_all_gated(
        &mut target,
        &session.desired,
        &req,
        swarm,
        &mut |stage| {
            if stage == phoenix_exec::target::APPLYING && observe_counts.is_none() {
                observe_counts = Some(session.client.counts());
            }
        },
        Some(&mut gate),
    );
    let SyncRun {
        observed,
        mut plan,
        journal,
        swarm_applied,
    } = match run {
        Ok(r) => r,
        Err(f) => return crate::workflow::report_failure(&f, dry_run),
    };
    plan.notes.extend(material_notes);
    plan.notes.extend(client_note);
    if !matches!(mode, Mode::Sync) {
        let export = phoenix_exec::target::Target::export(&target, &observed);
        return crate::workflow::finish_dry(mode, args, &req, &plan, &export);
    }
    drop(observed);
    let client = &session.client;
    let observe_counts = observe_counts.unwrap_or_else(|| client.counts());
    // The host network switch, after a successful apply (which staged the file).
    let switched = match &journal {
        Some(j) if j.is_success() && args.switch_network => {
            match crate::netswitch_cmd::switch(&session, &shell, args) {
                Ok(r) => r,
                Err(code) => return code,
            }
        }
        _ => Vec::new(),
    };
    let report = Report {
        desired: &session.desired,
        plan: &plan,
        swarm_applied: &swarm_applied,
        switch: &switched,
        journal: journal.as_ref(),
        observe: observe_counts,
        total: client.counts(),
        host_writes: shell.writes(),
    };
    let written = match args.output {
        OutputFormat::Json => report.json(),
        OutputFormat::Text => report.text(),
    };
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = writeln!(anstream::stderr(), "error: cannot write output: {e}");
        return exit::FAILED;
    }
    if let Some(sw) = switched.iter().find(|sw| {
        !sw.switched() && !matches!(sw.outcome, phoenix_pve::netswitch::SwitchOutcome::Unchanged)
    }) {
        error(
            &format!(
                "the network switch of {} did not stick: {}",
                sw.live_path,
                crate::netswitch_cmd::outcome_line(sw)
            ),
            "the previous file is live again and the rejected one is staged as PATH.new; fix it and run again",
        );
        return exit::APPLY_FAILED;
    }
    match &journal {
        Some(j) if !j.is_success() => {
            let wave = j.failed_wave.as_deref().unwrap_or("?");
            error(
                &format!("apply stopped in wave `{wave}`; later waves were not started"),
                "the journal above says what was done; fix the cause and run `phoenix sync all` again",
            );
            exit::APPLY_FAILED
        }
        Some(_) => exit::OK,
        None => crate::workflow::dry_exit(&plan, args.detailed_exitcode),
    }
}

struct Report<'a> {
    desired: &'a phoenix_model::DesiredState,
    plan: &'a Plan,
    /// What the Swarm phase changed.
    swarm_applied: &'a [String],
    switch: &'a [phoenix_pve::netswitch::SwitchReport],
    journal: Option<&'a Journal>,
    observe: phoenix_pve::RequestCounts,
    total: phoenix_pve::RequestCounts,
    host_writes: usize,
}

/// Where in the configuration a Proxmox parameter of guest `g` comes from: the file and the
/// JSON pointer of the key (the guest object when no single key produces it).
pub(crate) fn param_source(g: &phoenix_model::model::Guest, param: &str) -> String {
    use phoenix_model::model::GuestKind;
    let file = match g.kind {
        GuestKind::Lxc => "phoenix_lxc_configs.json",
        GuestKind::Vm => "phoenix_vm_configs.json",
    };
    let key = match param {
        "memory" => Some("memory_mb"),
        "swap" => Some("swap_mb"),
        "cores" => Some("cores"),
        "hostname" | "name" => Some("name"),
        "onboot" => Some("start_at_boot"),
        "startup" => Some("boot_order"),
        "unprivileged" => Some("unprivileged"),
        "rootfs" | "storage" => Some("storage_pool"),
        "scsi0" => Some("disk_size_gb"),
        "features" => Some("features"),
        "ciuser" | "cipassword" | "sshkeys" => Some("user_config"),
        "ostemplate" => Some("template"),
        _ => None,
    };
    let nic = param
        .strip_prefix("net")
        .and_then(|n| n.parse::<u8>().ok())
        .and_then(|i| g.nics.iter().find(|n| n.index == i));
    let pointer = match (nic, key) {
        (Some(n), _) => n.loc.pointer.clone(),
        (None, Some(k)) => g.loc.child(k).pointer,
        (None, None) => g.loc.pointer.clone(),
    };
    format!("{file} {pointer}")
}

/// A failed action's error, with every parameter PVE rejected traced to its configuration key.
fn failure_detail(
    d: &phoenix_model::DesiredState,
    action: &phoenix_plan::Action,
    e: &phoenix_pve::PveError,
) -> String {
    let mut s = e.to_string();
    if let (phoenix_pve::PveError::Parameters { errors, .. }, Some(g)) =
        (e, action.guest().and_then(|id| d.guest(id)))
    {
        for (param, msg) in errors {
            s.push_str(&format!(
                "\n    {param}: {} — from {}",
                msg.trim(),
                param_source(g, param)
            ));
        }
    }
    s
}

fn outcome_text(o: &Outcome) -> (&'static str, Option<String>) {
    (o.label(), o.detail())
}

impl Report<'_> {
    fn json(&self) -> std::io::Result<()> {
        let journal = self.journal.map(|j| {
            let entries: Vec<_> = j
                .entries
                .iter()
                .map(|e| {
                    let (outcome, detail) = outcome_text(&e.outcome);
                    let detail = match &e.outcome {
                        Outcome::Failed(err) => Some(failure_detail(self.desired, &e.action, err)),
                        _ => detail,
                    };
                    serde_json::json!({"wave": e.wave, "action": e.action,
                        "outcome": outcome, "detail": detail})
                })
                .collect();
            serde_json::json!({"success": j.is_success(), "failed_wave": j.failed_wave,
                "entries": entries})
        });
        let value = serde_json::json!({
            "plan": self.plan,
            "journal": journal,
            "requests": {"observe": self.observe, "total": self.total},
            "host_writes": self.host_writes,
            "network_switch": self.switch,
            "swarm_applied": self.swarm_applied,
        });
        crate::jsonout::print("sync", &value)
    }

    fn text(&self) -> std::io::Result<()> {
        let color = crate::colour::stdout();
        let mut out = std::io::stdout().lock();
        write!(out, "{}", phoenix_plan::display::text(self.plan, color))?;
        match self.journal {
            None => writeln!(out, "\ndry run: nothing applied")?,
            Some(j) => {
                writeln!(out, "\njournal:")?;
                for e in &j.entries {
                    let (outcome, detail) = outcome_text(&e.outcome);
                    let detail = match &e.outcome {
                        Outcome::Failed(err) => Some(failure_detail(self.desired, &e.action, err)),
                        _ => detail,
                    };
                    let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
                    writeln!(out, "  [{}] {} → {outcome}{detail}", e.wave, e.action)?;
                }
            }
        }
        for c in self.swarm_applied {
            writeln!(out, "  [docker swarm] {c}")?;
        }
        for sw in self.switch {
            write!(out, "{}", crate::netswitch_cmd::text(sw))?;
        }
        writeln!(
            out,
            "requests: observe {} ({} writes), total {} ({} writes, {} retries); host file writes: {}",
            self.observe.requests,
            self.observe.writes,
            self.total.requests,
            self.total.writes,
            self.total.retries,
            self.host_writes
        )
    }
}

/// The Swarm of `d` on the node, when the model has one and phoenix has an Engine API client
/// certificate; otherwise `None`, with a note saying why the Swarm is left out.
fn swarm_context(
    d: &phoenix_model::DesiredState,
    args: &SyncAllArgs,
) -> Option<crate::swarm_cmd::Ctx> {
    let desired = phoenix_plan::swarm::desired(d)?;
    let certs = match crate::swarm_cmd::engine_client_dir(
        args.docker_cert_path.as_deref(),
        args.ca_dir.as_deref(),
    ) {
        Ok(c) => c,
        Err((what, hint)) => {
            let _ = writeln!(
                anstream::stderr(),
                "note: the Swarm is neither observed nor converged: {what}\n  hint: {hint}"
            );
            return None;
        }
    };
    Some(crate::swarm_cmd::pve_ctx(
        d.clone(),
        desired,
        args.docker_host.as_deref(),
        &certs,
    ))
}

/// `sync all --target pve --only swarm`: observe the Swarm through its engines, plan, apply
/// (unless --dry-run), report. The Proxmox API is not contacted.
fn swarm_only(args: &SyncAllArgs) -> u8 {
    let d = match config::load(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    if phoenix_plan::swarm::desired(&d).is_none() {
        let _ = writeln!(
            std::io::stdout(),
            "the configuration has no Swarm: nothing to do"
        );
        return exit::OK;
    }
    let Some(ctx) = swarm_context(&d, args) else {
        return exit::FAILED;
    };
    let swarm = ctx.swarm();
    let observed = swarm.observe();
    let (actions, notes) = swarm.plan_actions(&observed);
    if !args.dry_run && !actions.is_empty() && !args.yes {
        let shown: String = actions.iter().map(|a| format!("  ~ {a}\n")).collect();
        if let Err(f) = crate::workflow::confirm(actions.len(), "the Swarm", &shown) {
            return crate::failure::report_failure(&f);
        }
    }
    let applied = if args.dry_run || actions.is_empty() {
        Ok(Vec::new())
    } else {
        swarm.apply_actions(&actions)
    };
    let mut out = std::io::stdout();
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "swarm": {
                    "observed": observed,
                    "actions": actions,
                    "applied": applied.as_ref().ok(),
                    "notes": notes,
                    "dry_run": args.dry_run,
                }
            });
            let _ = crate::jsonout::print("sync", &doc);
        }
        OutputFormat::Text => {
            let _ = writeln!(out, "docker swarm (pve):");
            for a in &actions {
                let _ = writeln!(out, "  ~ {a}");
            }
            for n in &notes {
                let _ = writeln!(out, "note: {n}");
            }
            let _ = writeln!(
                out,
                "{}",
                crate::report::count(actions.len(), "Swarm action")
            );
            if args.dry_run {
                let _ = writeln!(out, "dry run: nothing applied");
            }
            if let Ok(c) = &applied {
                for line in c {
                    let _ = writeln!(out, "  [docker swarm] {line}");
                }
            }
        }
    }
    match applied {
        Ok(_) => exit::OK,
        Err(f) => {
            error(&format!("swarm: {}", f.message), &f.hint);
            exit::APPLY_FAILED
        }
    }
}
