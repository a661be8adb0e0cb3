//! The Swarm of a configuration on a target's engines, as the pipeline's Swarm phase
//! ([`crate::target::SwarmPhase`]) and for `phoenix swarm`: observed, planned (stacks by their
//! rendered services' hashes, phoenix's secrets by their content's) and converged — init and
//! overlays, joins and labels, every stack deployed with its secrets and files as content
//! versions, stacks no longer in the model removed. Target-neutral: where a guest's files are
//! readable here and how a secret reference resolves are the caller's. Secret values never
//! appear in a line or an error. I/O: the Engine API, the files the stacks and the manifest name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bollard::Docker;
use phoenix_model::input::InputKind;
use phoenix_model::model::{DesiredState, Secret};
use phoenix_plan::swarm::{
    SecretSource, SwarmAction, SwarmActionKind, SwarmDesired, SwarmObserved,
};
use phoenix_render::stack::RenderedStack;

use crate::docker::members::{self, NodeEngine};
use crate::docker::observe::{Engine, observe_engines};
use crate::docker::stack::{self, DeployOptions};
use crate::docker::{DockerError, sha256_hex};
use crate::target::{Failure, Stage, SwarmPhase};

/// How a secret reference of the configuration resolves (`{"env"}`, `{"file"}`, plaintext).
pub type ResolveSecret<'a> = dyn Fn(&Secret) -> Result<Vec<u8>, String> + Sync + 'a;

/// Where the files a manifest entry places inside a guest are readable here (a node: the
/// manifest's own paths; the lab: under each guest's root).
pub trait GuestFiles: Sync {
    fn path(&self, guest: u32, path: &str) -> PathBuf;
}

/// One configuration's Swarm on one target's engines.
pub struct Swarm<'a> {
    pub d: &'a DesiredState,
    pub desired: &'a SwarmDesired,
    /// One per Swarm node, in the model's order.
    pub engines: &'a [Engine],
    pub guest_files: &'a dyn GuestFiles,
    /// The CA root's file here (the lab's trust bundle); `None`: the CA root secret must
    /// exist on the Swarm already.
    pub ca_root: Option<PathBuf>,
    pub resolve: &'a ResolveSecret<'a>,
    /// Tagged images present on the manager are used by ID (the lab has no registry).
    pub resolve_local: bool,
}

fn swarm_failure(message: impl Into<String>, hint: impl Into<String>) -> Failure {
    Failure::new(Stage::Swarm, message, hint)
}

fn engine_failure(e: DockerError) -> Failure {
    swarm_failure(
        e.to_string(),
        "`phoenix swarm status` shows the engines and what the plan wants",
    )
}

impl Swarm<'_> {
    /// The first manager's client.
    pub fn leader(&self) -> Result<&Docker, Failure> {
        let no_swarm = || {
            swarm_failure(
                "the configuration has no Swarm manager",
                "give a VM `swarm_role: manager` and a static address",
            )
        };
        let leader = self.desired.leader().ok_or_else(no_swarm)?;
        let e = self
            .engines
            .iter()
            .find(|e| e.guest == leader.guest.0)
            .ok_or_else(no_swarm)?;
        e.client.as_ref().map_err(|why| {
            swarm_failure(
                format!("cannot reach the manager {} ({}): {why}", e.name, e.at),
                "check the address (--docker-host) and the client certificate (--docker-cert-path)",
            )
        })
    }

    /// Each engine and the cluster as the first answering manager sees it.
    pub fn observe(&self) -> SwarmObserved {
        observe_engines(self.engines)
    }

    /// The content of every secret phoenix owns, by base name (`only`: these bases), with
    /// the reasons the others are left to exist on their own.
    pub fn secret_contents(
        &self,
        only: Option<&[String]>,
    ) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
        let read =
            |p: PathBuf| std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        let mut out = BTreeMap::new();
        let mut notes = Vec::new();
        for s in &self.desired.secrets {
            if only.is_some_and(|o| !o.contains(&s.name)) {
                continue;
            }
            let content = match &s.source {
                SecretSource::Certificate { guest, path, .. }
                | SecretSource::Key { guest, path, .. } => {
                    read(self.guest_files.path(guest.0, path))
                }
                SecretSource::CaRoot => match &self.ca_root {
                    Some(p) => read(p.clone()),
                    None => Err("the CA root is taken from the existing secret".into()),
                },
                SecretSource::AdminPassword { .. } => match &self.d.portainer {
                    Some(api) => match &api.admin_password {
                        Some(pw) => (self.resolve)(pw),
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

    /// A stack's variables may be secrets: resolved here, never printed.
    fn resolve_var(&self, s: &Secret) -> Result<String, String> {
        (self.resolve)(s)
            .and_then(|b| String::from_utf8(b).map_err(|_| "the value is not UTF-8".to_string()))
    }

    /// `stack` rendered for `env`.
    pub fn render(&self, stack: &str, env: &str) -> Result<RenderedStack, Failure> {
        phoenix_render::stack::render_with(self.d, stack, env, &|s| self.resolve_var(s))
            .map_err(|e| swarm_failure(e.to_string(), e.hint()))
    }

    /// The desired hash of every service of every stack the model deploys.
    fn stack_hashes(&self) -> (BTreeMap<String, String>, Vec<String>) {
        let mut out = BTreeMap::new();
        let mut notes = Vec::new();
        for s in &self.desired.stacks {
            match self.render(&s.stack, &s.environment) {
                Ok(mut r) => {
                    match file_contents(&s.stack, &s.environment, &r) {
                        Ok(files) => r.fold_file_contents(&files),
                        Err(f) => notes.push(format!(
                            "stack {}: {}; its files are not compared",
                            s.namespace, f.message
                        )),
                    }
                    for svc in r.services {
                        out.insert(svc.name, svc.sha256);
                    }
                }
                Err(f) => notes.push(format!(
                    "stack {}: cannot render ({}); its services are not compared",
                    s.namespace, f.message
                )),
            }
        }
        (out, notes)
    }

    /// The plan's Swarm actions against `observed`, and notes on what could not be compared.
    pub fn plan_actions(&self, observed: &SwarmObserved) -> (Vec<SwarmAction>, Vec<String>) {
        let (hashes, mut notes) = self.stack_hashes();
        let (contents, secret_notes) = self.secret_contents(None);
        notes.extend(secret_notes);
        let secret_hashes: BTreeMap<String, String> = contents
            .iter()
            .map(|(k, v)| (k.clone(), sha256_hex(v)))
            .collect();
        let actions = phoenix_plan::swarm::plan(self.desired, observed, &hashes, &secret_hashes);
        (actions, notes)
    }

    /// The clients of every node; an error naming the first node whose engine cannot be
    /// reached.
    fn clients(&self) -> Result<Vec<NodeEngine<'_>>, Failure> {
        self.engines
            .iter()
            .map(|e| match &e.client {
                Ok(c) => Ok(NodeEngine {
                    guest: e.guest,
                    client: c,
                }),
                Err(why) => Err(swarm_failure(
                    format!("cannot reach {} ({}) at {}: {why}", e.name, e.guest, e.at),
                    "every node's engine must listen on TCP+TLS 2376 with a certificate from phoenix's CA",
                )),
            })
            .collect()
    }

    /// Init on the first manager, then the model's overlays. The change lines.
    pub fn init(&self) -> Result<Vec<String>, Failure> {
        let engines = self.clients()?;
        let pool = members::addr_pool(self.d).map_err(engine_failure)?;
        let mut changes = members::init(self.desired, &engines, pool).map_err(engine_failure)?;
        changes.extend(members::overlays(self.desired, &engines).map_err(engine_failure)?);
        Ok(changes)
    }

    /// Join the other nodes and set the labels. The change lines.
    pub fn join(&self) -> Result<Vec<String>, Failure> {
        let engines = self.clients()?;
        members::join(self.desired, &engines).map_err(engine_failure)
    }

    /// Render `stack` for `env`, put phoenix's secrets and the environment's files in place
    /// (new versions when their content changed), deploy, and remove secret and config
    /// versions no service uses any more. The namespace, the change lines and notes.
    pub fn deploy_stack(
        &self,
        stack_name: &str,
        env: &str,
    ) -> Result<(String, Vec<String>, Vec<String>), Failure> {
        let mut rendered = self.render(stack_name, env)?;
        let files = file_contents(stack_name, env, &rendered)?;
        rendered.fold_file_contents(&files);
        let c = self.leader()?;
        let (contents, notes) = self.secret_contents(Some(&rendered.secrets));
        let mut changes =
            stack::rotate_secrets(c, &mut rendered, &contents).map_err(engine_failure)?;
        changes.extend(stack::rotate_configs(c, &mut rendered, &files).map_err(engine_failure)?);
        changes.extend(
            stack::deploy(
                c,
                &rendered,
                &DeployOptions {
                    resolve_local: self.resolve_local,
                },
            )
            .map_err(engine_failure)?,
        );
        let bases: Vec<String> = contents.keys().cloned().collect();
        changes.extend(stack::prune_secrets(c, &bases).map_err(engine_failure)?);
        let bases: Vec<String> = files.keys().cloned().collect();
        changes.extend(stack::prune_configs(c, &bases).map_err(engine_failure)?);
        Ok((rendered.namespace, changes, notes))
    }

    /// Remove the stack deployed as `namespace`. The change lines.
    pub fn remove_stack(&self, namespace: &str) -> Result<Vec<String>, Failure> {
        stack::remove(self.leader()?, namespace).map_err(engine_failure)
    }

    /// The services of `namespace` with their running and desired task counts.
    pub fn replicas(&self, namespace: &str) -> Result<Vec<(String, u64, u64)>, Failure> {
        stack::replicas(self.leader()?, namespace).map_err(engine_failure)
    }

    /// Carry out the plan's Swarm actions: init and overlays, joins and labels, then every
    /// stack of the model deployed (secrets rotated, services created or updated; unchanged
    /// ones are left alone), stacks no longer in the model removed. The change lines.
    pub fn apply_actions(&self, actions: &[SwarmAction]) -> Result<Vec<String>, Failure> {
        use SwarmActionKind as K;
        let has = |k: &[K]| actions.iter().any(|a| k.contains(&a.kind));
        if let Some(a) = actions.iter().find(|a| a.kind == K::Engine) {
            return Err(swarm_failure(
                a.to_string(),
                "start Docker on that VM (provisioning's `docker` feature) and check 2376 is reachable",
            ));
        }
        let mut changes = Vec::new();
        if has(&[K::Init, K::Overlay]) {
            changes.extend(self.init()?);
        }
        if has(&[K::Join, K::Role, K::Label]) {
            changes.extend(self.join()?);
        }
        if has(&[K::Secret, K::StackDeploy, K::StackUpdate]) {
            for s in &self.desired.stacks {
                // What is left out was said by the plan's notes.
                changes.extend(self.deploy_stack(&s.stack, &s.environment)?.1);
            }
        }
        for a in actions.iter().filter(|a| a.kind == K::StackRemove) {
            changes.extend(self.remove_stack(&a.subject)?);
        }
        Ok(changes)
    }
}

/// The Swarm phase of `sync all`: these engines, this plan.
impl SwarmPhase for Swarm<'_> {
    fn observe(&self) -> SwarmObserved {
        Swarm::observe(self)
    }

    fn plan(&self, observed: &SwarmObserved) -> (Vec<SwarmAction>, Vec<String>) {
        self.plan_actions(observed)
    }

    fn apply(&self, actions: &[SwarmAction]) -> Result<Vec<String>, Failure> {
        self.apply_actions(actions).map_err(|f| Failure {
            message: format!("swarm: {}", f.message),
            ..f
        })
    }
}

/// The content of each environment file of `rendered` by config base name; an error naming
/// the first file that cannot be read (the deploy would mount a stale or no version).
pub fn file_contents(
    stack: &str,
    env: &str,
    rendered: &RenderedStack,
) -> Result<BTreeMap<String, Vec<u8>>, Failure> {
    rendered
        .files
        .iter()
        .map(
            |f| match phoenix_model::input::read_regular(&f.path, InputKind::Stack) {
                Ok(c) => Ok((f.base.clone(), c)),
                Err(e) => Err(swarm_failure(
                    format!("stack {stack} (environment {env}): {e}"),
                    "create it, or fix its `source` under the environment's `files` in \
                 phoenix_stacks_config.json (a relative path is relative to the configuration \
                 directory)",
                )),
            },
        )
        .collect()
}
