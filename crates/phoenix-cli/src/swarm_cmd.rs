//! `phoenix swarm status|init|join|deploy STACK --env ENV|rm STACK --env ENV`: the Swarm of
//! the configuration through the Docker Engine API.
//!
//! Engines: `--target lab` uses the lab twin's engines (each Swarm VM's unix socket, root
//! only); `--target pve` reaches the VMs over TCP+TLS 2376 — the first manager at
//! `--docker-host` (`DOCKER_HOST`), every other node at its Swarm address from the model —
//! with the client certificate in `--docker-cert-path` (`DOCKER_CERT_PATH`, Docker's
//! `ca.pem`/`cert.pem`/`key.pem` layout; default `~/.docker`), issued by phoenix's CA.
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
use std::path::PathBuf;

use phoenix_exec::docker::observe::Engine;
use phoenix_exec::docker::stack::DeployOptions;
use phoenix_model::DesiredState;
use phoenix_plan::swarm::{SecretSource, SwarmAction, SwarmDesired, SwarmObserved};
use serde::Serialize;

use crate::cli::{OutputFormat, SwarmArgs, SwarmCommand, SwarmTarget, SwarmTargetArgs};
use crate::{config, exit};

type Failure = (String, String);

fn error(msg: &str, hint: &str) -> u8 {
    let mut stderr = anstream::stderr();
    let _ = writeln!(stderr, "error: {msg}");
    let _ = writeln!(stderr, "  hint: {hint}");
    exit::FAILED
}

pub fn run(args: &SwarmArgs) -> u8 {
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
    /// The first manager's client.
    fn leader(&self) -> Result<&bollard::Docker, Failure> {
        let leader = self.desired.leader().ok_or_else(no_swarm)?;
        let e = self
            .engines
            .iter()
            .find(|e| e.guest == leader.guest.0)
            .ok_or_else(no_swarm)?;
        e.client.as_ref().map_err(|why| {
            (
                format!("cannot reach the manager {} ({}): {why}", e.name, e.at),
                "check the address (--docker-host) and the client certificate (--docker-cert-path)"
                    .into(),
            )
        })
    }

    /// Host path of a file the manifest places in guest `guest`.
    fn host_path(&self, guest: u32, path: &str) -> PathBuf {
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
            let certs = t
                .docker_cert_path
                .clone()
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
            let certs = certs.ok_or_else(|| {
                (
                    "no client certificate directory".into(),
                    "pass --docker-cert-path DIR (ca.pem, cert.pem, key.pem) or set DOCKER_CERT_PATH"
                        .into(),
                )
            })?;
            Ok(pve_ctx(d, desired, t.docker_host.as_deref(), &certs))
        }
    }
}

/// The Swarm of `d` on a Proxmox node: the first manager at `host` (else its Swarm address),
/// every other node at its Swarm address, port 2376, with the client certificate in `certs`.
pub(crate) fn pve_ctx(
    d: DesiredState,
    desired: SwarmDesired,
    host: Option<&str>,
    certs: &std::path::Path,
) -> Ctx {
    let engines = desired
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
        .collect();
    Ctx {
        d,
        desired,
        engines,
        lab: None,
        label: "pve".into(),
    }
}

fn engine_err(e: phoenix_exec::docker::DockerError) -> Failure {
    (
        e.to_string(),
        "`phoenix swarm status` shows the engines and what the plan wants".into(),
    )
}

fn lab_err(e: phoenix_lab::LabError) -> Failure {
    (
        e.to_string(),
        "`phoenix swarm status` shows the engines and what the plan wants".into(),
    )
}

/// A stack's variables may be secrets (`env`/`file`): resolved here, never printed.
fn resolve_var(s: &phoenix_model::model::Secret) -> Result<String, String> {
    config::resolve_secret(s)
        .and_then(|b| String::from_utf8(b).map_err(|_| "the value is not UTF-8".to_string()))
}

/// The content of every secret phoenix owns, by base name (`only`: these bases), with the
/// reasons the others are left to exist on their own.
fn secret_contents(ctx: &Ctx, only: Option<&[String]>) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut notes = Vec::new();
    for s in &ctx.desired.secrets {
        if only.is_some_and(|o| !o.contains(&s.name)) {
            continue;
        }
        let content = match &s.source {
            SecretSource::Certificate { guest, path, .. }
            | SecretSource::Key { guest, path, .. } => {
                let p = ctx.host_path(guest.0, path);
                std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            }
            SecretSource::CaRoot => match &ctx.lab {
                Some(l) => {
                    let p = ctx.host_path(
                        l.plan.nodes.first().map_or(0, |n| n.guest),
                        phoenix_lab::ingress::TRUST_BUNDLE,
                    );
                    std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
                }
                None => Err("the CA root is taken from the existing secret on pve".into()),
            },
            SecretSource::AdminPassword { .. } => match &ctx.d.portainer {
                Some(api) => match &api.admin_password {
                    Some(pw) => config::resolve_secret(pw),
                    None => Err("portainer_api.admin_password is not set".into()),
                },
                None => Err("the configuration has no portainer_api".into()),
            },
            SecretSource::Unknown { why } => Err(why.clone()),
        };
        match content {
            Ok(c) => {
                out.insert(s.name.clone(), c);
            }
            Err(why) => notes.push(format!(
                "secret {} must exist on the Swarm already ({why})",
                s.name
            )),
        }
    }
    (out, notes)
}

/// The desired hash of every service of every stack the model deploys.
fn stack_hashes(ctx: &Ctx) -> (BTreeMap<String, String>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut notes = Vec::new();
    for s in &ctx.desired.stacks {
        match phoenix_render::stack::render_with(&ctx.d, &s.stack, &s.environment, &resolve_var) {
            Ok(mut r) => {
                match file_contents(&s.stack, &s.environment, &r) {
                    Ok(files) => r.fold_file_contents(&files),
                    Err((msg, _)) => notes.push(format!(
                        "stack {}: {msg}; its files are not compared",
                        s.namespace
                    )),
                }
                for svc in r.services {
                    out.insert(svc.name, svc.sha256);
                }
            }
            Err(e) => notes.push(format!(
                "stack {}: cannot render ({e}); its services are not compared",
                s.namespace
            )),
        }
    }
    (out, notes)
}

#[derive(Serialize)]
struct StatusDoc<'a> {
    target: &'a str,
    observed: &'a SwarmObserved,
    replicas: BTreeMap<String, Vec<(String, u64, u64)>>,
    actions: &'a [SwarmAction],
    notes: &'a [String],
}

/// The plan's Swarm actions against `observed`: stacks compared by their rendered services'
/// hashes, phoenix's secrets by their content's; notes on what could not be compared.
pub(crate) fn plan_actions(ctx: &Ctx, observed: &SwarmObserved) -> (Vec<SwarmAction>, Vec<String>) {
    let (hashes, notes) = stack_hashes(ctx);
    let (contents, _) = secret_contents(ctx, None);
    let secret_hashes: BTreeMap<String, String> = contents
        .iter()
        .map(|(k, v)| (k.clone(), phoenix_exec::docker::sha256_hex(v)))
        .collect();
    let actions = phoenix_plan::swarm::plan(&ctx.desired, observed, &hashes, &secret_hashes);
    (actions, notes)
}

fn status(t: &SwarmTargetArgs, detailed: bool) -> Result<u8, Failure> {
    let ctx = context(t)?;
    let observed = observe(&ctx);
    let (actions, mut notes) = plan_actions(&ctx, &observed);
    let mut replicas = BTreeMap::new();
    if observed.cluster.is_some()
        && let Ok(c) = ctx.leader()
    {
        for s in &ctx.desired.stacks {
            match phoenix_exec::docker::stack::replicas(c, &s.namespace) {
                Ok(r) if !r.is_empty() => {
                    replicas.insert(s.namespace.clone(), r);
                }
                Ok(_) => {}
                Err(e) => notes.push(format!("stack {}: {e}", s.namespace)),
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
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| (format!("cannot serialise: {e}"), "a bug".into()))?;
        let _ = writeln!(out, "{text}");
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
            "  cluster (via {}): {} node(s), overlays [{}], {} secret(s), {} service(s)",
            c.via,
            c.nodes.len(),
            overlays.join(", "),
            c.secrets.len(),
            c.services.len()
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
        let _ = writeln!(out, "{} action(s).", actions.len());
    }
    Ok(code)
}

fn print_changes(format: OutputFormat, what: &str, changes: &[String]) -> u8 {
    let mut out = std::io::stdout();
    if matches!(format, OutputFormat::Json) {
        let doc = serde_json::json!({ "operation": what, "changes": changes });
        let _ = writeln!(out, "{doc:#}");
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
        Some(l) => phoenix_lab::swarm::up(&ctx.d, &l.topology)
            .map_err(lab_err)?
            .map(|s| s.changes)
            .unwrap_or_default(),
        None if init => init_remote(&ctx)?,
        None => join_remote(&ctx)?,
    };
    Ok(print_changes(t.output, what, &changes))
}

/// The clients of every node; an error naming the first node whose engine cannot be reached.
fn clients(ctx: &Ctx) -> Result<Vec<phoenix_exec::docker::members::NodeEngine<'_>>, Failure> {
    ctx.engines
        .iter()
        .map(|e| match &e.client {
            Ok(c) => Ok(phoenix_exec::docker::members::NodeEngine {
                guest: e.guest,
                client: c,
            }),
            Err(why) => Err((
                format!("cannot reach {} ({}) at {}: {why}", e.name, e.guest, e.at),
                "every node's engine must listen on TCP+TLS 2376 with a certificate from phoenix's CA".into(),
            )),
        })
        .collect()
}

/// Init on the first manager, then the model's overlays.
fn init_remote(ctx: &Ctx) -> Result<Vec<String>, Failure> {
    let engines = clients(ctx)?;
    let pool = phoenix_exec::docker::members::addr_pool(&ctx.d).map_err(engine_err)?;
    let mut changes =
        phoenix_exec::docker::members::init(&ctx.desired, &engines, pool).map_err(engine_err)?;
    changes.extend(
        phoenix_exec::docker::members::overlays(&ctx.desired, &engines).map_err(engine_err)?,
    );
    Ok(changes)
}

/// Join the other nodes and set the labels.
fn join_remote(ctx: &Ctx) -> Result<Vec<String>, Failure> {
    let engines = clients(ctx)?;
    phoenix_exec::docker::members::join(&ctx.desired, &engines).map_err(engine_err)
}

/// Carry out the plan's Swarm actions on a Proxmox node's Swarm (`sync all --target pve`):
/// init and overlays, joins and labels, then every stack of the model deployed (secrets
/// rotated, services created or updated; unchanged ones are left alone), stacks no longer in
/// the model removed. The change lines.
pub(crate) fn apply_actions(ctx: &Ctx, actions: &[SwarmAction]) -> Result<Vec<String>, Failure> {
    use phoenix_plan::swarm::SwarmActionKind as K;
    let has = |k: &[K]| actions.iter().any(|a| k.contains(&a.kind));
    if let Some(a) = actions.iter().find(|a| a.kind == K::Engine) {
        return Err((
            format!("{a}"),
            "start Docker on that VM (provisioning's `docker` feature) and check 2376 is reachable"
                .into(),
        ));
    }
    let mut changes = Vec::new();
    if has(&[K::Init, K::Overlay]) {
        changes.extend(init_remote(ctx)?);
    }
    if has(&[K::Join, K::Role, K::Label]) {
        changes.extend(join_remote(ctx)?);
    }
    if has(&[K::Secret, K::StackDeploy, K::StackUpdate]) {
        for s in &ctx.desired.stacks {
            changes.extend(deploy_stack(ctx, &s.stack, &s.environment)?.1);
        }
    }
    for a in actions.iter().filter(|a| a.kind == K::StackRemove) {
        let c = ctx.leader()?;
        changes.extend(phoenix_exec::docker::stack::remove(c, &a.subject).map_err(engine_err)?);
    }
    Ok(changes)
}

/// Observe the Swarm of `ctx` (for the plan).
/// The Swarm phase of `sync all` on a node: these engines, this plan.
impl phoenix_exec::target::SwarmPhase for Ctx {
    fn observe(&self) -> SwarmObserved {
        observe(self)
    }

    fn plan(&self, observed: &SwarmObserved) -> (Vec<SwarmAction>, Vec<String>) {
        plan_actions(self, observed)
    }

    fn apply(&self, actions: &[SwarmAction]) -> Result<Vec<String>, phoenix_exec::target::Failure> {
        apply_actions(self, actions).map_err(|(msg, hint)| {
            phoenix_exec::target::Failure::new(
                phoenix_exec::target::Stage::Swarm,
                format!("swarm: {msg}"),
                hint,
            )
        })
    }
}

pub(crate) fn observe(ctx: &Ctx) -> SwarmObserved {
    phoenix_exec::docker::observe::observe_engines(&ctx.engines)
}

fn render(
    ctx: &Ctx,
    stack: &str,
    env: &str,
) -> Result<phoenix_render::stack::RenderedStack, Failure> {
    phoenix_render::stack::render_with(&ctx.d, stack, env, &resolve_var)
        .map_err(|e| (e.to_string(), e.hint().to_string()))
}

fn deploy(t: &SwarmTargetArgs, stack: &str, env: &str) -> Result<u8, Failure> {
    let ctx = context(t)?;
    let (namespace, changes) = deploy_stack(&ctx, stack, env)?;
    Ok(print_changes(
        t.output,
        &format!("deploy {namespace}"),
        &changes,
    ))
}

/// The content of each environment file of `rendered` by config base name; an error naming
/// the first file that cannot be read (the deploy would mount a stale or no version).
fn file_contents(
    stack: &str,
    env: &str,
    rendered: &phoenix_render::stack::RenderedStack,
) -> Result<BTreeMap<String, Vec<u8>>, Failure> {
    rendered
        .files
        .iter()
        .map(|f| match std::fs::read(&f.path) {
            Ok(c) => Ok((f.base.clone(), c)),
            Err(e) => Err((
                format!(
                    "stack {stack} (environment {env}): cannot read the file {}: {e}",
                    f.path.display()
                ),
                "create it, or fix its `source` under the environment's `files` in \
                 phoenix_stacks_config.json (a relative path is relative to the configuration \
                 directory)"
                    .into(),
            )),
        })
        .collect()
}

/// Render `stack` for `env`, put phoenix's secrets and the environment's files in place (new
/// versions when their content changed), deploy, and remove secret and config versions no
/// service uses any more.
fn deploy_stack(ctx: &Ctx, stack: &str, env: &str) -> Result<(String, Vec<String>), Failure> {
    let mut rendered = render(ctx, stack, env)?;
    let files = file_contents(stack, env, &rendered)?;
    rendered.fold_file_contents(&files);
    let c = ctx.leader()?;
    let (contents, notes) = secret_contents(ctx, Some(&rendered.secrets));
    let mut changes = phoenix_exec::docker::stack::rotate_secrets(c, &mut rendered, &contents)
        .map_err(engine_err)?;
    changes.extend(
        phoenix_exec::docker::stack::rotate_configs(c, &mut rendered, &files)
            .map_err(engine_err)?,
    );
    changes.extend(
        phoenix_exec::docker::stack::deploy(
            c,
            &rendered,
            &DeployOptions {
                resolve_local: ctx.lab.is_some(),
            },
        )
        .map_err(engine_err)?,
    );
    let bases: Vec<String> = contents.keys().cloned().collect();
    changes.extend(phoenix_exec::docker::stack::prune_secrets(c, &bases).map_err(engine_err)?);
    let bases: Vec<String> = files.keys().cloned().collect();
    changes.extend(phoenix_exec::docker::stack::prune_configs(c, &bases).map_err(engine_err)?);
    for n in notes {
        let _ = writeln!(anstream::stderr(), "note: {n}");
    }
    Ok((rendered.namespace, changes))
}

fn rm(t: &SwarmTargetArgs, stack: &str, env: &str) -> Result<u8, Failure> {
    let ctx = context(t)?;
    let namespace = phoenix_render::stack::namespace(stack, env);
    let c = ctx.leader()?;
    let changes = phoenix_exec::docker::stack::remove(c, &namespace).map_err(engine_err)?;
    Ok(print_changes(
        t.output,
        &format!("rm {namespace}"),
        &changes,
    ))
}
