//! `phoenix setup`: load, connect the node's host shell (and its API when an endpoint is
//! given), then phoenix-host's observe → plan → apply; this file only wires and prints (the
//! plan and the journal to stdout). `sync all --only host-setup` runs the same [`host_setup`].

use std::collections::BTreeMap;
use std::io::Write;

use phoenix_host::nthash::NtHash;
use phoenix_host::plan::PlanInputs;
use phoenix_host::storage::PveApi;
use phoenix_host::users::Hidden;
use phoenix_host::{Scope, Secrets, SetupPlan, Step};

use crate::cli::{OutputFormat, PveConnArgs, SetupArgs, SyncTarget};
use crate::{config, exit, session};

/// The Proxmox API for phoenix-host, over the node's client.
#[derive(Debug)]
struct ClientApi<'a>(&'a phoenix_pve::PveClient);

impl PveApi for ClientApi<'_> {
    fn get(&self, path: &str) -> Result<serde_json::Value, String> {
        self.0.get(path, &[]).map_err(|e| e.to_string())
    }
    fn write(
        &self,
        method: &str,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<serde_json::Value, String> {
        self.0
            .write_named(method, path, params)
            .map_err(|e| e.to_string())
    }
}

/// What `host_setup` is asked to do.
pub(crate) struct SetupRequest<'a> {
    pub pve: &'a PveConnArgs,
    pub wipe_disks: bool,
    pub remove_dropped_storage: bool,
    pub dry_run: bool,
    pub json: bool,
    /// Exit 2 from a dry run with changes.
    pub detailed: bool,
    /// Ask on a terminal before changing the node (`--yes` turns it off).
    pub ask: bool,
    /// How long to wait for the node's lock, and what the lock says holds it.
    pub lock_timeout: u64,
    pub command: &'a str,
}

pub fn run(args: &SetupArgs) -> u8 {
    if matches!(args.target, SyncTarget::Lab) {
        let _ = writeln!(
            anstream::stderr(),
            "error: the lab twin has no host setup yet\n  hint: `phoenix setup --target pve --host-root DIR` plans and writes the host's files under a scratch directory"
        );
        return exit::USAGE;
    }
    let request = SetupRequest {
        pve: &args.pve,
        wipe_disks: args.wipe_disks,
        remove_dropped_storage: args.remove_dropped_storage,
        dry_run: args.dry_run,
        json: matches!(args.output, OutputFormat::Json),
        detailed: args.detailed_exitcode,
        ask: !args.yes,
        lock_timeout: args.lock.lock_timeout,
        command: "setup --target pve",
    };
    host_setup(&args.config, &request)
}

/// Whether an API endpoint is given (flag or `PROXMOX_VE_ENDPOINT`).
fn endpoint_given(pve: &PveConnArgs) -> bool {
    pve.endpoint.is_some()
        || std::env::var("PROXMOX_VE_ENDPOINT").is_ok_and(|v| !v.trim().is_empty())
}

/// A secret's bytes, or the usage error naming the key (never the value).
fn secret(key: &str, s: &phoenix_model::model::Secret) -> Result<Vec<u8>, u8> {
    config::resolve_secret(s).map_err(|e| {
        let _ = writeln!(
            anstream::stderr(),
            "error: {key}: {e}\n  hint: set the environment variable or file `{key}` names ({s})"
        );
        exit::USAGE
    })
}

/// Observe, plan and (unless a dry run) apply the host setup; prints the plan and journal.
pub(crate) fn host_setup(config_dir: &std::path::Path, req: &SetupRequest<'_>) -> u8 {
    let mut stderr = anstream::stderr();
    let (desired, client, shell, node) = if endpoint_given(req.pve) {
        match session::connect(config_dir, req.pve) {
            Ok(s) => (s.desired, Some(s.client), s.shell, s.opts.node),
            Err(code) => return code,
        }
    } else {
        let desired = match config::load(config_dir) {
            Ok(d) => d,
            Err(code) => return code,
        };
        let shell = session::host_shell(
            req.pve.host_root.as_ref(),
            req.pve.ssh.as_ref(),
            req.pve.ssh_port,
            req.pve.ssh_identity.as_ref(),
            req.pve.ssh_known_hosts.as_ref(),
        );
        let node = req.pve.node.clone().unwrap_or_else(|| match &req.pve.ssh {
            Some(dest) => dest.clone(),
            None => "this host".into(),
        });
        (desired, None, shell, node)
    };
    // One run at a time on a node: the same lock as `sync all` (a dry run only reads).
    let _lock = if req.dry_run {
        None
    } else {
        match crate::locking::node(shell.as_ref(), &node, req.command, req.lock_timeout) {
            Ok(g) => Some(g),
            Err(code) => return code,
        }
    };
    let api = client.as_ref().map(ClientApi);
    let api: Option<&dyn PveApi> = api.as_ref().map(|a| a as &dyn PveApi);
    let setup = &desired.host_setup;
    let scope = match &req.pve.host_root {
        Some(r) if r != std::path::Path::new("/") => Scope::Scratch(r.display().to_string()),
        _ => Scope::Live,
    };
    let mut password = None;
    if let Some(s) = setup.samba.as_ref().and_then(|s| s.password.as_ref()) {
        match secret("samba.password", s) {
            Ok(p) => password = Some(p),
            Err(code) => return code,
        }
    }
    let mut hash = None;
    if let Some(s) = setup
        .admin_user
        .as_ref()
        .and_then(|u| u.password_hash.as_ref())
    {
        match secret("users.password_hash", s) {
            Ok(h) => hash = Some(h),
            Err(code) => return code,
        }
    }
    let inputs = PlanInputs {
        samba_password: password.as_deref().map(NtHash::of),
        wipe_disks: req.wipe_disks,
        remove_dropped_storage: req.remove_dropped_storage,
        admin_password_hash: hash
            .as_deref()
            .map(|h| Hidden(String::from_utf8_lossy(h).into_owned())),
    };
    let observed = match phoenix_host::observe_with(shell.as_ref(), api, setup, scope) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(
                stderr,
                "error: observing the host: {e}\n  hint: check --host-root, --ssh or the API connection"
            );
            return exit::APPLY_FAILED;
        }
    };
    let plan = phoenix_host::plan(setup, &observed, &inputs);
    if req.dry_run {
        print(&plan, None, req.json);
        return if req.detailed && plan.changes() > 0 {
            exit::CHANGES
        } else {
            exit::OK
        };
    }
    if plan.refusals().next().is_some() {
        print(&plan, None, req.json);
        let _ = writeln!(
            stderr,
            "error: phoenix setup refuses a destructive step (REFUSED above); nothing was changed\n  hint: each refusal says what the disk holds and how to allow it"
        );
        return exit::FAILED;
    }
    if req.ask && plan.changes() > 0 {
        // On a terminal: the plan, then the question; without one, refused unless --yes.
        print(&plan, None, req.json);
        if let Err(f) = crate::workflow::confirm(plan.changes(), &node, "") {
            return crate::failure::report_failure(&f);
        }
    }
    let secrets = Secrets {
        samba_password: password.as_deref(),
        admin_password_hash: hash.as_deref(),
    };
    let journal = phoenix_host::apply_with(shell.as_ref(), api, &plan, &secrets);
    for p in [password.as_mut(), hash.as_mut()].into_iter().flatten() {
        p.iter_mut().for_each(|b| *b = 0);
    }
    print(&plan, Some(&journal), req.json);
    if journal.failed() {
        let _ = writeln!(
            stderr,
            "error: phoenix setup failed (the journal says where)\n  hint: fix the cause and run `phoenix setup` again: it redoes only what still differs"
        );
        return exit::APPLY_FAILED;
    }
    exit::OK
}

fn texts<'a>(steps: impl Iterator<Item = &'a Step>) -> Vec<String> {
    steps.map(ToString::to_string).collect()
}

fn print(plan: &SetupPlan, journal: Option<&phoenix_host::Journal>, json: bool) {
    let mut out = std::io::stdout();
    let skipped = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Skip { .. }))
        .count();
    let destructive = texts(plan.destructive());
    let refused = texts(plan.refusals());
    let reboot = texts(plan.needs_reboot());
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
            "destructive": destructive,
            "refused": refused,
            "needs_reboot": reboot,
            "plan": plan.steps,
            "journal": journal.map(|_| entries),
        });
        let _ = crate::jsonout::print("setup", &value);
        return;
    }
    let _ = writeln!(
        out,
        "phoenix setup: {} changes, {skipped} skipped, {} destructive, {} refused, {} need a reboot",
        plan.changes(),
        destructive.len(),
        refused.len(),
        reboot.len()
    );
    match journal {
        None => {
            for step in &plan.steps {
                let mark = if step.is_change() { "+" } else { "-" };
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
