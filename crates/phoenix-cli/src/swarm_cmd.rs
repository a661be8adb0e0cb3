//! `phoenix swarm status|init|join|deploy STACK --env ENV|rm STACK --env ENV`: the Swarm of
//! the configuration through the Docker Engine API.
//!
//! Engines: `--target lab` uses the lab twin's engines (each Swarm VM's unix socket, root
//! only); `--target pve` reaches the VMs over TCP+TLS 2376 — the first manager at
//! `--docker-host` (`DOCKER_HOST`), every other node at its Swarm address from the model —
//! with phoenix's client certificate: `--docker-cert-path` (`DOCKER_CERT_PATH`, Docker's
//! `ca.pem`/`cert.pem`/`key.pem` layout) when given, else `<--ca-dir>/engine-client`, where
//! `sync all --target pve --ca-dir` issues and renews it ([`engine_client_dir`]).
//!
//! - `status`: each engine observed, the cluster as the first answering manager lists it, the
//!   deployed stacks' replicas, and the plan's Swarm actions with their reasons
//!   (`phoenix_plan::swarm`); read-only; `--detailed-exitcode` exits 2 when actions are planned.
//! - `init` / `join`: in the lab the whole lab Swarm is brought up (`phoenix_lab::swarm::up`,
//!   idempotent); on pve, init on the first manager and join the others with explicit
//!   advertise and data-path addresses, then the node labels (`swarm::members`).
//! - `deploy`: the stack rendered for the environment (variables by the compose parser, Traefik
//!   labels injected), the secrets phoenix owns (certificates and keys from the manifest, the
//!   Portainer admin password) created as content-versioned secrets, the environment's
//!   `files` read from the host and created as content-versioned configs mounted in every
//!   service of the stack (an unreadable file is an error naming it), the services created or
//!   updated, unused secret and config versions removed. In the lab, tagged images present on
//!   the manager are used by ID (there is no registry).
//! - `rm`: the stack's services and the networks it created.
//!
//! Output: change lines / tables on stdout (`--output json` for one document), errors with a
//! hint on stderr; exit 0, 1 on failure. Secret values never appear.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use phoenix_exec::docker::observe::Engine;
use phoenix_exec::swarm::{GuestFiles, Swarm};
use phoenix_model::DesiredState;
use phoenix_plan::swarm::{SwarmAction, SwarmDesired, SwarmObserved};
use serde::Serialize;

use crate::cli::{OutputFormat, SwarmArgs, SwarmCommand, SwarmTarget, SwarmTargetArgs};
use crate::{config, exit};

type Failure = (String, String);

fn error(msg: &str, hint: &str) -> u8 {
    crate::failure::error(msg, hint);
    exit::FAILED
}

pub fn run(args: &SwarmArgs) -> u8 {
    // Changes on the lab's engines take the lab's lock (a node's Swarm has no host shell here).
    let change = match &args.command {
        SwarmCommand::Status { .. } => None,
        SwarmCommand::Init { target } => Some((target, "swarm init")),
        SwarmCommand::Join { target } => Some((target, "swarm join")),
        SwarmCommand::Deploy { target, .. } => Some((target, "swarm deploy")),
        SwarmCommand::Rm { target, .. } => Some((target, "swarm rm")),
    };
    let _lock = match change {
        Some((t, command)) if t.target == SwarmTarget::Lab => {
            match crate::locking::lab(&t.prefix.prefix, command, t.lock.lock_timeout) {
                // What the engines' restarts start is recorded as the lab's.
                Ok(g) => Some((g, phoenix_lab::procs::Active::enter(&t.prefix.prefix))),
                Err(code) => return code,
            }
        }
        _ => None,
    };
    let r = match &args.command {
        SwarmCommand::Status {
            target,
            detailed_exitcode,
        } => status(target, *detailed_exitcode),
        SwarmCommand::Init { target } => membership(target, true),
        SwarmCommand::Join { target } => membership(target, false),
        SwarmCommand::Deploy { stack, env, target } => deploy(target, stack, env),
        SwarmCommand::Rm { stack, env, target } => rm(target, stack, env),
    };
    r.unwrap_or_else(|(msg, hint)| error(&msg, &hint))
}

/// The lab the engines belong to (target lab).
struct Lab {
    prefix: String,
    topology: phoenix_lab::LabTopology,
    plan: phoenix_lab::swarm::SwarmPlan,
}

/// What every subcommand works from.
pub(crate) struct Ctx {
    d: DesiredState,
    desired: SwarmDesired,
    engines: Vec<Engine>,
    lab: Option<Lab>,
    /// What the output calls the target.
    label: String,
}

impl Ctx {
    /// The Swarm of this context as phoenix-exec drives it.
    pub(crate) fn swarm(&self) -> Swarm<'_> {
        Swarm {
            d: &self.d,
            desired: &self.desired,
            engines: &self.engines,
            guest_files: self,
            ca_root: self.lab.as_ref().map(|l| {
                self.path(
                    l.plan.nodes.first().map_or(0, |n| n.guest),
                    phoenix_lab::ingress::TRUST_BUNDLE,
                )
            }),
            resolve: &resolve_secret,
            resolve_local: self.lab.is_some(),
        }
    }
}

impl GuestFiles for Ctx {
    /// Host path of a file the manifest places in guest `guest`.
    fn path(&self, guest: u32, path: &str) -> PathBuf {
        match &self.lab {
            Some(l) => phoenix_lab::ingress::under(
                &phoenix_lab::ingress::guest_root(&l.prefix, guest),
                path,
            ),
            // The manifest's paths are the node's own (persistent storage mounted into guests).
            None => PathBuf::from(path),
        }
    }
}

fn resolve_secret(s: &phoenix_model::model::Secret) -> Result<Vec<u8>, String> {
    config::resolve_secret(s)
}

fn no_swarm() -> Failure {
    (
        "the configuration has no Swarm VM with a static address".into(),
        "give a VM `swarm_role` (manager or worker) and a static address".into(),
    )
}

fn context(t: &SwarmTargetArgs) -> Result<Ctx, Failure> {
    let d = config::load(&t.config).map_err(|_| {
        (
            format!("the configuration in {} does not load", t.config.display()),
            format!(
                "`phoenix validate --config {}` shows each problem",
                t.config.display()
            ),
        )
    })?;
    let desired = phoenix_plan::swarm::desired(&d).ok_or_else(no_swarm)?;
    match t.target {
        SwarmTarget::Lab => {
            if !phoenix_exec::root::is_root() {
                return Err((
                    "`phoenix swarm --target lab` must run as root (the engines' sockets are root's)".into(),
                    "run it with sudo, as the lab was brought up".into(),
                ));
            }
            let prefix = t.prefix.prefix.clone();
            phoenix_lab::validate_prefix(&prefix).map_err(|e| {
                (
                    e.to_string(),
                    "prefixes are 1-6 characters of [a-z0-9]".into(),
                )
            })?;
            let topology = phoenix_lab::status::load_state(&prefix).ok_or_else(|| {
                (
                    format!("lab {prefix} is not up"),
                    format!(
                        "`phoenix sync all --target lab --config {} --prefix {prefix}` brings it up",
                        t.config.display()
                    ),
                )
            })?;
            let plan = phoenix_lab::swarm::plan(&d, &topology)
                .map_err(|e| {
                    (
                        e.to_string(),
                        "a lab built from another configuration?".into(),
                    )
                })?
                .ok_or_else(no_swarm)?;
            let engines = phoenix_lab::swarm::observe::lab_engines(&plan);
            Ok(Ctx {
                d,
                desired,
                engines,
                label: format!("lab {prefix}"),
                lab: Some(Lab {
                    prefix,
                    topology,
                    plan,
                }),
            })
        }
        SwarmTarget::Pve => {
            let certs = engine_client_dir(t.docker_cert_path.as_deref(), t.ca_dir.as_deref())?;
            Ok(pve_ctx(d, desired, t.docker_host.as_deref(), &certs))
        }
    }
}

/// Where phoenix's Engine API client certificate is: `explicit` (`--docker-cert-path`,
/// `DOCKER_CERT_PATH`) as given, else `<ca_dir>/engine-client` (where `sync all --target pve
/// --ca-dir` keeps it), which must then hold `ca.pem`, `cert.pem` and `key.pem`.
pub(crate) fn engine_client_dir(
    explicit: Option<&Path>,
    ca_dir: Option<&Path>,
) -> Result<PathBuf, Failure> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let Some(ca_dir) = ca_dir else {
        return Err((
            "no Engine API client certificate: neither --docker-cert-path nor --ca-dir given"
                .into(),
            "pass --ca-dir (phoenix's CA directory; `sync all --target pve --ca-dir` keeps the \
             certificate in its engine-client/) or --docker-cert-path DIR"
                .into(),
        ));
    };
    let dir = phoenix_exec::docker::client_cert::client_dir(ca_dir);
    if !phoenix_exec::docker::client_cert::complete(&dir) {
        return Err((
            format!(
                "no Engine API client certificate in {} (ca.pem, cert.pem, key.pem)",
                dir.display()
            ),
            format!(
                "`phoenix sync all --target pve --ca-dir {}` issues it from the CA",
                ca_dir.display()
            ),
        ));
    }
    Ok(dir)
}

/// phoenix's Engine API client certificate in `<--ca-dir>/engine-client` (CN `phoenix`,
/// client auth; `phoenix_exec::docker::client_cert`): issued or renewed from the CA when the
/// configuration has a Swarm, the Swarm or the PKI is part of the run and no
/// `--docker-cert-path` overrides it; kept when still good (a second run writes nothing). On a dry run only
/// decided. The line for the plan's notes, `None` when kept or not in scope.
pub(crate) fn engine_client(
    d: &phoenix_model::DesiredState,
    args: &crate::cli::SyncAllArgs,
    ca: Option<&phoenix_pki::CaStore>,
    dry_run: bool,
) -> Result<Option<String>, u8> {
    let (Some(ca), Some(dir)) = (ca, &args.ca_dir) else {
        return Ok(None);
    };
    if args.docker_cert_path.is_some() || phoenix_plan::swarm::desired(d).is_none() {
        return Ok(None);
    }
    let failed = |e: String| {
        error(
            &format!("phoenix's Engine API client certificate: {e}"),
            "the CA directory must be writable by phoenix (`phoenix ca status --ca-dir DIR`)",
        );
        exit::APPLY_FAILED
    };
    let bundle = phoenix_pki::trust_distribution(ca.public(), d)
        .map_err(|e| failed(e.to_string()))?
        .bundle_pem;
    let client = phoenix_exec::docker::client_cert::client_dir(dir);
    let now = std::time::SystemTime::now();
    if dry_run {
        let decision = phoenix_exec::docker::client_cert::decide(&client, ca, &bundle, now);
        return Ok((!decision.is_keep()).then(|| {
            format!(
                "phoenix's Engine API client certificate ({}): {decision}",
                client.display()
            )
        }));
    }
    phoenix_exec::docker::client_cert::ensure(&client, ca, &bundle, now)
        .map_err(|e| failed(e.to_string()))
}

/// The Swarm of `d` on a Proxmox node: the first manager at `host` (else its Swarm address),
/// every other node at its Swarm address, port 2376, with the client certificate in `certs`.
pub(crate) fn pve_ctx(
    d: DesiredState,
    desired: SwarmDesired,
    host: Option<&str>,
    certs: &std::path::Path,
) -> Ctx {
    let engines = pve_engines(&desired, host, certs);
    Ctx {
        d,
        desired,
        engines,
        lab: None,
        label: "pve".into(),
    }
}

/// The Swarm nodes' engines on a Proxmox node: the first manager at `host` (else its Swarm
/// address), every other node at its Swarm address, port 2376, TLS with `certs`.
pub(crate) fn pve_engines(
    desired: &SwarmDesired,
    host: Option<&str>,
    certs: &std::path::Path,
) -> Vec<Engine> {
    desired
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let at = match (host, i) {
                (Some(h), 0) => h.to_string(),
                _ => format!(
                    "tcp://{}",
                    std::net::SocketAddr::new(
                        n.advertise_addr,
                        phoenix_exec::docker::ENGINE_TLS_PORT
                    )
                ),
            };
            let client = phoenix_exec::docker::connect_tls(&at, certs).map_err(|e| e.to_string());
            Engine {
                guest: n.guest.0,
                name: n.name.clone(),
                at,
                client,
            }
        })
        .collect()
}

fn lab_err(e: phoenix_lab::LabError) -> Failure {
    (
        e.to_string(),
        "`phoenix swarm status` shows the engines and what the plan wants".into(),
    )
}

#[derive(Serialize)]
struct StatusDoc<'a> {
    target: &'a str,
    observed: &'a SwarmObserved,
    replicas: BTreeMap<String, Vec<(String, u64, u64)>>,
    actions: &'a [SwarmAction],
    notes: &'a [String],
}

/// The Swarm failure as this command reports it.
fn failed(f: phoenix_exec::target::Failure) -> Failure {
    (f.message, f.hint)
}

fn status(t: &SwarmTargetArgs, detailed: bool) -> Result<u8, Failure> {
    let ctx = context(t)?;
    let swarm = ctx.swarm();
    let observed = swarm.observe();
    let (actions, mut notes) = swarm.plan_actions(&observed);
    let mut replicas = BTreeMap::new();
    if observed.cluster.is_some() && swarm.leader().is_ok() {
        for s in &ctx.desired.stacks {
            match swarm.replicas(&s.namespace) {
                Ok(r) if !r.is_empty() => {
                    replicas.insert(s.namespace.clone(), r);
                }
                Ok(_) => {}
                Err(e) => notes.push(format!("stack {}: {}", s.namespace, e.message)),
            }
        }
    }
    let code = if detailed && !actions.is_empty() {
        exit::CHANGES
    } else {
        exit::OK
    };
    let mut out = std::io::stdout();
    if matches!(t.output, OutputFormat::Json) {
        let doc = StatusDoc {
            target: &ctx.label,
            observed: &observed,
            replicas,
            actions: &actions,
            notes: &notes,
        };
        crate::jsonout::print("swarm status", &doc)
            .map_err(|e| (format!("cannot write: {e}"), "a bug".into()))?;
        return Ok(code);
    }
    let _ = writeln!(out, "Swarm of {}:", ctx.label);
    for n in &observed.nodes {
        let state = match (&n.engine, n.local_state) {
            (Err(why), _) => format!("engine unreachable: {why}"),
            (Ok(()), Some(s)) => format!("{s}{}", if n.is_manager { ", manager" } else { "" }),
            (Ok(()), None) => "state unknown".into(),
        };
        let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "  node {} ({}): {state}{}",
            n.name,
            n.guest,
            if labels.is_empty() {
                String::new()
            } else {
                format!("; labels {}", labels.join(", "))
            }
        );
    }
    if let Some(c) = &observed.cluster {
        let overlays: Vec<&str> = c
            .networks
            .iter()
            .filter(|n| n.driver == "overlay" && n.name != "ingress")
            .map(|n| n.name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "  cluster (via {}): {}, overlays [{}], {}, {}",
            c.via,
            crate::report::count(c.nodes.len(), "node"),
            overlays.join(", "),
            crate::report::count(c.secrets.len(), "secret"),
            crate::report::count(c.services.len(), "service")
        );
    }
    for (ns, services) in &replicas {
        for (svc, running, want) in services {
            let _ = writeln!(out, "  stack {ns}: {svc} {running}/{want} running");
        }
    }
    for n in &notes {
        let _ = writeln!(out, "  note: {n}");
    }
    if actions.is_empty() {
        let _ = writeln!(
            out,
            "No Swarm actions: the Swarm matches the configuration."
        );
    } else {
        let _ = writeln!(out, "Planned Swarm actions:");
        for a in &actions {
            let _ = writeln!(out, "  ~ {a}");
        }
        let _ = writeln!(out, "{}.", crate::report::count(actions.len(), "action"));
    }
    Ok(code)
}

fn print_changes(format: OutputFormat, what: &str, changes: &[String]) -> u8 {
    let mut out = std::io::stdout();
    if matches!(format, OutputFormat::Json) {
        let doc = serde_json::json!({ "operation": what, "changes": changes });
        let _ = crate::jsonout::print("swarm", &doc);
    } else if changes.is_empty() {
        let _ = writeln!(out, "{what}: no changes");
    } else {
        for c in changes {
            let _ = writeln!(out, "{what}: {c}");
        }
    }
    exit::OK
}

fn membership(t: &SwarmTargetArgs, init: bool) -> Result<u8, Failure> {
    let ctx = context(t)?;
    let what = if init { "swarm init" } else { "swarm join" };
    let changes = match &ctx.lab {
        // The lab's Swarm comes up whole (engines, init, join, labels, overlay), idempotently.
        Some(l) => phoenix_lab::swarm::up(&ctx.d, &l.topology, false)
            .map_err(lab_err)?
            .map(|s| s.changes)
            .unwrap_or_default(),
        None if init => ctx.swarm().init().map_err(failed)?,
        None => ctx.swarm().join().map_err(failed)?,
    };
    Ok(print_changes(t.output, what, &changes))
}

fn deploy(t: &SwarmTargetArgs, stack: &str, env: &str) -> Result<u8, Failure> {
    let ctx = context(t)?;
    let (namespace, changes, notes) = ctx.swarm().deploy_stack(stack, env).map_err(failed)?;
    for n in notes {
        let _ = writeln!(anstream::stderr(), "note: {n}");
    }
    Ok(print_changes(
        t.output,
        &format!("deploy {namespace}"),
        &changes,
    ))
}

fn rm(t: &SwarmTargetArgs, stack: &str, env: &str) -> Result<u8, Failure> {
    let ctx = context(t)?;
    let namespace = phoenix_render::stack::namespace(stack, env);
    let changes = ctx.swarm().remove_stack(&namespace).map_err(failed)?;
    Ok(print_changes(
        t.output,
        &format!("rm {namespace}"),
        &changes,
    ))
}
