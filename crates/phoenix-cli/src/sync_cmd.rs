//! `phoenix sync all --target pve`: observe the node (guests and the firewall through the
//! API, host files through the host shell), plan, print the plan, apply it and print the journal with the
//! request and write counters. Does network and file I/O (through `phoenix-pve`).

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};

use phoenix_plan::plan::Plan;
use phoenix_plan::subsystem::{self, Subsystem};
use phoenix_plan::{PlanContext, Request};
use phoenix_pve::apply::{ApplyOptions, Journal, Outcome, apply_plan_with};
use phoenix_pve::hostfiles::CountingShell;
use phoenix_pve::observe::{observe_guests, observe_host_files};
use phoenix_pve::{ConnectionFlags, ConnectionSettings, LocalShell, PveClient};
use phoenix_render::{FileTarget, RenderOptions};

use crate::cli::{ApplyArgs, OutputFormat, PveConnArgs, SyncAllArgs, SyncCommand, SyncTarget};
use crate::{config, exit};

/// Apply failure (ARCHITECTURE.md).
const APPLY_FAILED: u8 = 3;

pub fn run(command: &SyncCommand) -> u8 {
    match command {
        SyncCommand::All(args) => sync_all(args),
        SyncCommand::Confirm { id } => crate::netswitch_cmd::confirm(id),
    }
}

fn error(message: &str, hint: &str) {
    let _ = writeln!(anstream::stderr(), "error: {message}\n  hint: {hint}");
}

/// A connected node: the configuration, the API client and the node's host shell.
pub(crate) struct PveSession {
    pub desired: phoenix_model::DesiredState,
    pub client: PveClient,
    /// The node's host shell: this machine (`--host-root`) or OpenSSH (`--ssh`).
    pub shell: Box<dyn phoenix_pve::HostShell>,
    pub opts: RenderOptions,
}

/// Load the configuration and connect (settings from flags, else `PROXMOX_VE_*`).
pub(crate) fn connect(config: &std::path::Path, pve: &PveConnArgs) -> Result<PveSession, u8> {
    let desired = config::load(config)?;
    let flags = ConnectionFlags {
        endpoint: pve.endpoint.clone(),
        api_token: pve.api_token.clone(),
        node: pve.node.clone(),
        ca_file: pve.ca_file.clone(),
        fingerprint: pve.fingerprint.clone(),
        insecure: pve.insecure_skip_tls_verify,
        username: pve.username.clone(),
        password_file: pve.password_file.clone(),
    };
    // Flags first, then `PROXMOX_VE_*`, then what the configuration names (`proxmox_api`).
    let credentials_given = flags.api_token.is_some()
        || flags.username.is_some()
        || flags.password_file.is_some()
        || [
            phoenix_pve::connection::ENV_API_TOKEN,
            phoenix_pve::connection::ENV_USERNAME,
            phoenix_pve::connection::ENV_PASSWORD,
            phoenix_pve::connection::ENV_PASSWORD_FILE,
        ]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()));
    let defaults = match config::pve_defaults(&desired, credentials_given) {
        Ok(d) => d,
        Err(e) => {
            error(
                &e,
                "set the environment variable or file the configuration's proxmox_api names",
            );
            return Err(exit::USAGE);
        }
    };
    let env = |k: &str| std::env::var(k).ok().or_else(|| defaults.get(k).cloned());
    let settings = match ConnectionSettings::resolve(&flags, env) {
        Ok(s) => s,
        Err(e) => {
            error(
                &e.to_string(),
                "pass --endpoint/--node, --api-token or --username with $PROXMOX_VE_PASSWORD/--password-file, and --ca-file or --fingerprint, or set PROXMOX_VE_*",
            );
            return Err(exit::USAGE);
        }
    };
    if matches!(settings.trust, phoenix_pve::TlsTrust::InsecureAcceptAny) {
        let _ = writeln!(
            anstream::stderr(),
            "warning: TLS certificate verification is OFF (--insecure-skip-tls-verify): anyone on the path can read the credentials"
        );
    }
    let mut client = match PveClient::new(&settings) {
        Ok(c) => c,
        Err(e) => {
            error(&e.to_string(), "check the CA file or fingerprint");
            return Err(exit::USAGE);
        }
    };
    client.request_timeout = std::time::Duration::from_secs(pve.request_timeout);
    client.task.deadline = std::time::Duration::from_secs(pve.task_deadline);
    if let Err(e @ phoenix_pve::PveError::Login { .. }) = client.login() {
        error(
            &e.to_string(),
            "check the username and password, or use an API token",
        );
        return Err(exit::USAGE);
    }
    let root = pve.host_root.clone().unwrap_or_else(|| "/".into());
    let shell: Box<dyn phoenix_pve::HostShell> = match &pve.ssh {
        Some(destination) => {
            let mut ssh = phoenix_exec::SshShell::new(destination.clone());
            ssh.port = pve.ssh_port;
            ssh.identity = pve.ssh_identity.clone();
            ssh.known_hosts = pve.ssh_known_hosts.clone();
            ssh.root = pve.host_root.as_ref().map(|r| r.display().to_string());
            Box::new(ssh)
        }
        None => Box::new(LocalShell::new(root)),
    };
    Ok(PveSession {
        desired,
        client,
        shell,
        opts: RenderOptions {
            node: settings.node.clone(),
        },
    })
}

/// The observation, the plan and (when the firewall was observed through the API) the
/// desired firewall, for `status`.
pub(crate) type ObservedPlan = (
    phoenix_pve::observe::Observation,
    Plan,
    Option<phoenix_plan::firewall_api::FirewallState>,
);

/// Observe the node (guests, the firewall through the API, host files) and plan.
pub(crate) fn observe_and_plan(
    s: &PveSession,
    shell: &dyn phoenix_pve::HostShell,
    only: &BTreeSet<Subsystem>,
    request: &Request,
    provision: bool,
    swarm: Option<phoenix_plan::swarm::SwarmObserved>,
) -> Result<ObservedPlan, u8> {
    let (desired, client, opts) = (&s.desired, &s.client, &s.opts);
    // Observe.
    let managed: BTreeSet<_> = desired.guests.keys().copied().collect();
    let mut observation = match observe_guests(client, &managed, 8) {
        Ok(o) => o,
        Err(e) => {
            error(
                &format!("observe guests: {e}"),
                "is the endpoint a PVE node and the token allowed to read /cluster/resources?",
            );
            return Err(APPLY_FAILED);
        }
    };
    let host_paths: Vec<(FileTarget, String)> = match phoenix_render::render_all(desired, opts) {
        Ok(files) => files
            .into_iter()
            .filter(|f| f.target == FileTarget::Host)
            .map(|f| (f.target, f.path))
            .collect(),
        Err(e) => {
            error(
                &format!("render: {e}"),
                "`phoenix render` shows the same error",
            );
            return Err(exit::FAILED);
        }
    };
    // Host files are read only when a subsystem that owns one is part of the run; the `.fw`
    // files never: the firewall goes through the API (which stores those files on a node).
    let host_paths: Vec<_> = host_paths
        .into_iter()
        .filter(|(t, p)| subsystem::of_file(t, p) != Subsystem::Firewall)
        .filter(|(t, p)| only.is_empty() || only.contains(&subsystem::of_file(t, p)))
        .collect();
    match observe_host_files(shell, &host_paths) {
        Ok(files) => observation.state.files = files,
        Err(e) => {
            error(
                &format!("observe host files: {e}"),
                "--host-root names the node's root (default /)",
            );
            return Err(APPLY_FAILED);
        }
    }

    observation.state.swarm = swarm;

    // Plan.
    let ctx = PlanContext {
        now: phoenix_pki::issue::unix_seconds(std::time::SystemTime::now()),
        pki: None,
    };
    let provision = provision.then(phoenix_plan::provision::ProvisionOptions::default);
    let plan = match phoenix_plan::plan::plan_full(
        desired,
        &observation.state,
        request,
        opts,
        &ctx,
        provision.as_ref(),
    ) {
        Ok(p) => p,
        Err(e) => {
            error(&e.to_string(), "`phoenix plan` shows the same plan offline");
            return Err(exit::FAILED);
        }
    };

    let mut plan = plan;
    let mut firewall = None;
    if *request == Request::SyncAll {
        let wanted = only.is_empty() || only.contains(&Subsystem::Firewall);
        let fw_plan = if wanted {
            let mut desired_fw = phoenix_plan::firewall_api::desired(desired, opts);
            // A guest's firewall is written once the guest exists or is created in this run
            // (its wave follows the creates); a guest neither gets none, said in a note.
            let creating = only.is_empty() || only.contains(&Subsystem::Guests);
            let present: BTreeSet<_> = observation
                .inventory
                .iter()
                .map(|e| e.id)
                .chain(plan.actions().filter_map(|a| match a {
                    phoenix_plan::Action::CreateGuest { id, .. } if creating => Some(*id),
                    _ => None,
                }))
                .collect();
            let absent: Vec<String> = desired_fw
                .guests
                .iter()
                .filter(|g| !present.contains(&g.id))
                .map(|g| g.id.to_string())
                .collect();
            if !absent.is_empty() {
                plan.notes.push(format!(
                    "firewall of guest(s) {} not planned: they do not exist and are not created in this run",
                    absent.join(", ")
                ));
            }
            desired_fw.guests.retain(|g| present.contains(&g.id));
            let observed_fw = observe_firewall(client, &observation, &managed)?;
            let fw_plan = phoenix_plan::firewall_api::plan(&desired_fw, &observed_fw);
            firewall = Some(desired_fw);
            fw_plan
        } else {
            Default::default()
        };
        phoenix_plan::firewall_api::merge_into(&mut plan, fw_plan);
    }
    if !only.is_empty() {
        subsystem::restrict(&mut plan, only);
    }
    Ok((observation, plan, firewall))
}

/// The firewall through the API: cluster, this node, and the managed guests that exist.
fn observe_firewall(
    client: &PveClient,
    observation: &phoenix_pve::observe::Observation,
    managed: &BTreeSet<phoenix_model::model::GuestId>,
) -> Result<phoenix_plan::firewall_api::FirewallState, u8> {
    let guests: Vec<_> = observation
        .inventory
        .iter()
        .filter(|e| managed.contains(&e.id))
        .map(|e| (e.id, e.kind, e.node.clone()))
        .collect();
    phoenix_pve::firewall::observe_firewall(client, client.node(), &guests, 8).map_err(|e| {
        error(
            &format!("observe the firewall: {e}"),
            "is the token allowed to read /cluster/firewall and the guests' firewall (Sys.Audit, VM.Audit)?",
        );
        APPLY_FAILED
    })
}

fn sync_all(args: &SyncAllArgs) -> u8 {
    if matches!(args.target, SyncTarget::Lab) {
        return crate::sync_lab::run(args);
    }
    run_pve(args, &Request::SyncAll)
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
    let request = crate::plan_cmd::request_of(Some(&a.verb));
    if a.sync.switch_network && request != Request::SyncAll {
        error(
            "--switch-network belongs to `sync all` (the host network is not part of a guest verb)",
            "run `phoenix sync all --target pve --switch-network`",
        );
        return exit::USAGE;
    }
    run_pve(&a.sync, &request)
}

fn run_pve(args: &SyncAllArgs, request: &Request) -> u8 {
    if args.switch_network
        && let Err(code) = crate::netswitch_cmd::precheck(args)
    {
        return code;
    }
    let only: BTreeSet<Subsystem> = args.only.iter().copied().collect();
    if only.len() == 1 && only.contains(&Subsystem::Swarm) && *request == Request::SyncAll {
        // The Swarm alone: its engines, not the Proxmox API.
        return swarm_only(args);
    }
    let session = match connect(&args.config, &args.pve) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let shell = CountingShell::new(session.shell.as_ref());
    let swarm_ctx =
        if (only.is_empty() || only.contains(&Subsystem::Swarm)) && *request == Request::SyncAll {
            swarm_context(&session.desired, args)
        } else {
            None
        };
    let swarm_observed = swarm_ctx.as_ref().map(crate::swarm_cmd::observe);
    let (observation, mut plan, _) = match observe_and_plan(
        &session,
        &shell,
        &only,
        request,
        args.provision,
        swarm_observed.clone(),
    ) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // With the engines at hand, the Swarm is planned with phoenix's secrets' content too (a
    // renewed certificate is a rotation) and secret-referencing stack variables resolved.
    if let (Some(ctx), Some(obs)) = (&swarm_ctx, &swarm_observed) {
        let (actions, notes) = crate::swarm_cmd::plan_actions(ctx, obs);
        plan.set_swarm(actions);
        plan.notes.extend(notes);
    }
    let client = &session.client;
    let observe_counts = client.counts();

    // Apply.
    // step-ca's CA files for the provision steps, from `--ca-dir` (else skipped, said so).
    let materials = match (&args.ca_dir, args.provision && !args.dry_run) {
        (Some(dir), true) => {
            let d = &session.desired;
            let pass =
                crate::ca_cmd::passphrase_secret(&args.passphrase, d.step_ca.password.as_ref())
                    .map(|s| config::resolve_secret(&s))
                    .transpose();
            let step_ca_password = d
                .step_ca
                .password
                .as_ref()
                .map(config::resolve_secret)
                .transpose();
            let loaded = pass
                .and_then(|p| step_ca_password.map(|s| (p, s)))
                .and_then(|(p, s)| {
                    crate::materials::from_ca_dir(
                        d,
                        dir,
                        p.as_deref(),
                        s.as_deref(),
                        args.provisioner_key.as_deref(),
                    )
                });
            match loaded {
                Ok((m, notes)) => {
                    plan.notes.extend(notes);
                    m
                }
                Err(e) => {
                    error(
                        &format!("step-ca material: {e}"),
                        "check --ca-dir, the passphrase (--passphrase-env/--passphrase-file or step_ca.password) and --provisioner-key",
                    );
                    return exit::USAGE;
                }
            }
        }
        _ => crate::materials::MaterialMap::new(),
    };
    let journal = (!args.dry_run).then(|| {
        let options = ApplyOptions {
            parallelism: args.parallelism,
            image_store: args.image_store.clone(),
            shell: Some(&shell),
        };
        // Without material (no --ca-dir) step-ca's files are skipped, said so.
        apply_plan_with(client, &plan, &observation, &options, &materials)
    });
    // The Swarm, once the guests are in place.
    let mut swarm_applied = Vec::new();
    if let (Some(j), Some(ctx)) = (&journal, &swarm_ctx)
        && j.is_success()
        && !plan.swarm.is_empty()
    {
        match crate::swarm_cmd::apply_actions(ctx, &plan.swarm) {
            Ok(c) => swarm_applied = c,
            Err((msg, hint)) => {
                error(&format!("swarm: {msg}"), &hint);
                return APPLY_FAILED;
            }
        }
    }
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
        return APPLY_FAILED;
    }
    match &journal {
        Some(j) if !j.is_success() => {
            let wave = j.failed_wave.as_deref().unwrap_or("?");
            error(
                &format!("apply stopped in wave `{wave}`; later waves were not started"),
                "the journal above says what was done; fix the cause and run `phoenix sync all` again",
            );
            APPLY_FAILED
        }
        _ => exit::OK,
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
    match o {
        Outcome::Done => ("done", None),
        Outcome::Failed(e) => ("failed", Some(e.to_string())),
        Outcome::Skipped { reason } => ("skipped", Some(reason.clone())),
        Outcome::NeedsHostStep { what } => ("needs_host_step", Some(what.clone())),
        Outcome::Staged { path, written } => (
            "staged",
            Some(if *written {
                format!("written to {path}; switch pending")
            } else {
                format!("{path} already staged; switch pending")
            }),
        ),
        Outcome::NotStarted => ("not_started", None),
    }
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
        let text = serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?;
        writeln!(std::io::stdout().lock(), "{text}")
    }

    fn text(&self) -> std::io::Result<()> {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
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
    let Some(certs) = &args.docker_cert_path else {
        let _ = writeln!(
            anstream::stderr(),
            "note: the Swarm is neither observed nor converged: no Engine API client certificate \
             (--docker-cert-path or DOCKER_CERT_PATH; `phoenix swarm status --target pve` shows it)"
        );
        return None;
    };
    Some(crate::swarm_cmd::pve_ctx(
        d.clone(),
        desired,
        args.docker_host.as_deref(),
        certs,
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
    let observed = crate::swarm_cmd::observe(&ctx);
    let (actions, notes) = crate::swarm_cmd::plan_actions(&ctx, &observed);
    let applied = if args.dry_run || actions.is_empty() {
        Ok(Vec::new())
    } else {
        crate::swarm_cmd::apply_actions(&ctx, &actions)
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
            let _ = writeln!(out, "{doc:#}");
        }
        OutputFormat::Text => {
            let _ = writeln!(out, "docker swarm (pve):");
            for a in &actions {
                let _ = writeln!(out, "  ~ {a}");
            }
            for n in &notes {
                let _ = writeln!(out, "note: {n}");
            }
            let _ = writeln!(out, "{} Swarm action(s)", actions.len());
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
        Err((msg, hint)) => {
            error(&format!("swarm: {msg}"), &hint);
            APPLY_FAILED
        }
    }
}
