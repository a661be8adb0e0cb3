//! Docker stacks: a compose file plus one environment of `phoenix_stacks_config.json` rendered
//! into the Swarm services, networks, secrets and configs that `docker stack deploy` would make,
//! as plain values a backend turns into Engine API calls.
//!
//! What the render does, and the `docker stack deploy` behaviour it follows
//! (<https://docs.docker.com/reference/cli/docker/stack/deploy/>, docker/cli `stack/convert`):
//! - the namespace is `<env>_<stack>` (how the bash system deployed stacks, FORMAT.md); every
//!   service is `<namespace>_<service>`, stack-local networks and named volumes are prefixed
//!   the same way unless they are `external` or carry an explicit `name`;
//! - the compose file is interpolated first ([`crate::compose`]) with the environment's
//!   variables; an unset variable without a default is an error;
//! - compose `entrypoint` becomes the task's command and compose `command` its arguments; a
//!   string form is split into words (quotes and backslashes as a POSIX shell reads them, no
//!   expansion);
//! - service labels are compose `deploy.labels` plus the environment's Traefik labels for that
//!   service (Traefik's Swarm provider reads service labels,
//!   <https://doc.traefik.io/traefik/providers/swarm/>); a later key wins, labels are kept
//!   sorted. Compose `labels` are container labels;
//! - a service without `networks` joins the stack's `default` network, as with `docker stack`;
//! - secrets and configs must be `external` (created by phoenix elsewhere); secret files go to
//!   `/run/secrets/<target or name>`;
//! - the environment's `files[]` ([`phoenix_model::model::StackFile`]) are placed into every
//!   service of the stack at their destination (uid/gid 0, mode 0444) as Swarm configs named
//!   after the stack and the file: the base name `<namespace>_<file stem>` ([`config_base`]),
//!   listed with the host file in [`RenderedStack::files`]. The deploy turns each base into a
//!   content version `<base>-<12 hex of SHA-256>` (`phoenix_exec::docker::stack::rotate_configs`)
//!   — the render itself reads no file, so a service's hash covers the reference (name,
//!   destination, mode), not the file's content.
//!
//! Every key the render does not support is an error naming its JSON pointer (`x-` extension
//! keys are ignored, as the Compose specification says); nothing is dropped silently.
//! Each service carries a SHA-256 of its whole rendered content ([`RenderedService::sha256`])
//! so a deploy can leave an unchanged service alone. Environment values may come from secrets:
//! [`RenderedStack`]'s `Display` and [`EnvVar`]'s `Debug` never show them.
//! No I/O: values in, values out.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use phoenix_model::model::{DesiredState, Secret, StackFile};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::compose::{InterpolationError, interpolate, pointer_push};

/// Label Docker puts on every object of a stack (value: the namespace).
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// Where Swarm mounts secrets.
pub const SECRETS_DIR: &str = "/run/secrets";
/// Longest Swarm config or secret name (swarmkit's `validateConfigOrSecretAnnotations`).
pub const MAX_OBJECT_NAME: usize = 64;
/// What a content version adds to a base name: `-` and 12 hex digits.
const VERSION_SUFFIX_LEN: usize = 13;
/// Mode of the environment's files in the containers (read-only for everyone).
pub const FILE_MODE: u32 = 0o444;

/// Why a stack cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    #[error("no stack `{stack}` in phoenix_stacks_config.json")]
    UnknownStack { stack: String },
    #[error("stack `{stack}` has no environment `{env}` (it has: {known})")]
    UnknownEnvironment {
        stack: String,
        env: String,
        known: String,
    },
    #[error("stack `{stack}` has no compose file")]
    NoCompose { stack: String },
    #[error("stack variable `{name}`: {reason}")]
    Variable { name: String, reason: String },
    #[error(transparent)]
    Interpolation(#[from] InterpolationError),
    #[error("{pointer}: {what} is not supported")]
    Unsupported {
        pointer: String,
        what: String,
        hint: String,
    },
    #[error("{pointer}: {reason}")]
    Invalid {
        pointer: String,
        reason: String,
        hint: String,
    },
    #[error("Traefik label #{index} of service `{service}` is not `key=value`")]
    TraefikLabel { service: String, index: usize },
    #[error(
        "there are Traefik labels for service `{service}`, which the compose file does not define"
    )]
    TraefikService { service: String },
    #[error("environment file `{file}`: {reason}")]
    EnvironmentFile {
        file: String,
        reason: String,
        hint: String,
    },
}

impl StackError {
    /// A line telling the user how to fix it.
    pub fn hint(&self) -> String {
        match self {
            StackError::UnknownStack { .. } => {
                "stacks are the keys of `docker_stacks` in phoenix_stacks_config.json".into()
            }
            StackError::UnknownEnvironment { .. } => {
                "environments are the keys of the stack's `environments`".into()
            }
            StackError::NoCompose { stack } => {
                format!("put the compose file at stacks/{stack}/docker-compose.yml")
            }
            StackError::Variable { .. } => {
                "secret references are resolved when phoenix applies; use `render_with`".into()
            }
            StackError::Interpolation(e) => e.hint(),
            StackError::Unsupported { hint, .. }
            | StackError::Invalid { hint, .. }
            | StackError::EnvironmentFile { hint, .. } => hint.clone(),
            StackError::TraefikLabel { .. } => {
                "write each label as `traefik.http.routers.NAME.rule=Host(`name`)`".into()
            }
            StackError::TraefikService { .. } => {
                "name a service of the compose file under `services` in the environment".into()
            }
        }
    }
}

fn unsupported(pointer: &str, what: impl Into<String>, hint: impl Into<String>) -> StackError {
    StackError::Unsupported {
        pointer: pointer.into(),
        what: what.into(),
        hint: hint.into(),
    }
}

fn invalid(pointer: &str, reason: impl Into<String>, hint: impl Into<String>) -> StackError {
    StackError::Invalid {
        pointer: pointer.into(),
        reason: reason.into(),
        hint: hint.into(),
    }
}

/// A stack ready to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedStack {
    /// `<env>_<stack>`.
    pub namespace: String,
    /// By compose key.
    pub services: Vec<RenderedService>,
    /// The networks the services use, by compose key.
    pub networks: Vec<StackNetwork>,
    /// Names of the external secrets and configs the services use (must exist), sorted. The
    /// configs include the base names of [`Self::files`].
    pub secrets: Vec<String>,
    pub configs: Vec<String>,
    /// The environment's host files, in the order written: which config base name carries
    /// which file (every service mounts each of them). Empty for [`render_compose`].
    pub files: Vec<StackFileRef>,
}

/// A host file of the environment and the config base name it is deployed under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackFileRef {
    /// `<namespace>_<file stem>` ([`config_base`]).
    pub base: String,
    /// The host file (`source` resolved against the configuration directory).
    pub path: PathBuf,
}

impl RenderedStack {
    pub fn service(&self, key: &str) -> Option<&RenderedService> {
        self.services.iter().find(|s| s.key == key)
    }

    /// Fold the content of the environment's files (`contents`: config base → bytes, read by
    /// the caller) into the hash of each service that mounts them, so the hash the plan
    /// compares changes with a file's content and not only with its reference. Pure.
    pub fn fold_file_contents(&mut self, contents: &BTreeMap<String, Vec<u8>>) {
        let hex = |b: &[u8]| -> String {
            Sha256::digest(b)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect()
        };
        for svc in &mut self.services {
            let mut used: Vec<(&String, &Vec<u8>)> = svc
                .configs
                .iter()
                .filter_map(|f| contents.get_key_value(&f.source))
                .collect();
            if used.is_empty() {
                continue;
            }
            used.sort();
            let mut text = svc.sha256.clone();
            for (base, content) in used {
                text.push_str(&format!("\n{base} {}", hex(content)));
            }
            svc.sha256 = hex(text.as_bytes());
        }
    }

    /// Do any of the environment's files go into service `name` (full name)?
    pub fn mounts_files(&self, name: &str) -> bool {
        self.services.iter().any(|s| {
            s.name == name
                && s.configs
                    .iter()
                    .any(|c| self.files.iter().any(|f| f.base == c.source))
        })
    }
}

/// One network of the stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackNetwork {
    /// The compose key.
    pub key: String,
    /// The Swarm name: `<namespace>_<key>`, the explicit `name`, or the external name.
    pub name: String,
    /// Exists already (never created or removed by the stack).
    pub external: bool,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
    pub attachable: bool,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// One environment variable of a service. `Debug` hides the value (it may be a secret).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(skip)]
    pub value: String,
}

impl fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvVar")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkAttachment {
    /// The Swarm network name.
    pub name: String,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    Ingress,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PortSpec {
    pub target: u16,
    pub published: Option<u16>,
    pub protocol: Protocol,
    pub mode: PublishMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

/// A secret or config file in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRef {
    /// The Swarm object's name.
    pub source: String,
    /// The file's path in the container.
    pub target: String,
    pub uid: String,
    pub gid: String,
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Volume,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSpec {
    pub kind: MountKind,
    /// Host path (bind), Swarm volume name (volume; `None`: anonymous), none for tmpfs.
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    /// Volume driver and its options (named volumes declared with a driver).
    pub volume_driver: Option<String>,
    pub volume_driver_opts: BTreeMap<String, String>,
    pub volume_labels: BTreeMap<String, String>,
    pub volume_nocopy: bool,
    pub bind_propagation: Option<String>,
    pub tmpfs_size: Option<i64>,
    pub tmpfs_mode: Option<i64>,
}

impl MountSpec {
    fn new(kind: MountKind, source: Option<String>, target: String) -> Self {
        MountSpec {
            kind,
            source,
            target,
            read_only: false,
            volume_driver: None,
            volume_driver_opts: BTreeMap::new(),
            volume_labels: BTreeMap::new(),
            volume_nocopy: false,
            bind_propagation: None,
            tmpfs_size: None,
            tmpfs_mode: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum ServiceMode {
    Replicated { replicas: u64 },
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    None,
    OnFailure,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestartPolicy {
    pub condition: Option<RestartCondition>,
    pub delay_ns: Option<i64>,
    pub max_attempts: Option<u64>,
    pub window_ns: Option<i64>,
}

/// One Swarm service of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedService {
    /// The compose key.
    pub key: String,
    /// `<namespace>_<key>`.
    pub name: String,
    pub image: String,
    /// Compose `entrypoint` (the task's command) and `command` (its arguments).
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    /// Sorted by name.
    pub env: Vec<EnvVar>,
    /// Service labels: `deploy.labels` and the environment's Traefik labels.
    pub labels: BTreeMap<String, String>,
    /// Compose `labels`.
    pub container_labels: BTreeMap<String, String>,
    pub networks: Vec<NetworkAttachment>,
    pub ports: Vec<PortSpec>,
    pub endpoint_mode: EndpointMode,
    pub secrets: Vec<FileRef>,
    pub configs: Vec<FileRef>,
    pub mounts: Vec<MountSpec>,
    pub mode: ServiceMode,
    pub constraints: Vec<String>,
    /// `spread` descriptors.
    pub preferences: Vec<String>,
    pub max_replicas_per_node: Option<u64>,
    pub restart: Option<RestartPolicy>,
    pub hostname: Option<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub stop_grace_period_ns: Option<i64>,
    pub read_only: Option<bool>,
    pub init: Option<bool>,
    pub tty: Option<bool>,
    /// SHA-256 (hex) of everything above, environment values included.
    pub sha256: String,
}

impl fmt::Display for RenderedStack {
    /// A summary for plans and logs: names, images, ports, label keys and variable *names*
    /// only (values may be secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stack {}", self.namespace)?;
        for s in &self.services {
            let mode = match s.mode {
                ServiceMode::Replicated { replicas } => format!("{replicas} replica(s)"),
                ServiceMode::Global => "global".into(),
            };
            writeln!(
                f,
                "  service {} ({}, {mode}, sha256 {})",
                s.name,
                s.image,
                s.sha256.get(..12).unwrap_or(&s.sha256)
            )?;
            if !s.env.is_empty() {
                let names: Vec<&str> = s.env.iter().map(|e| e.name.as_str()).collect();
                writeln!(f, "    env {}", names.join(", "))?;
            }
            if !s.labels.is_empty() {
                let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
                writeln!(f, "    labels {}", keys.join(", "))?;
            }
            for p in &s.ports {
                let published = p.published.map(|p| p.to_string()).unwrap_or_default();
                writeln!(
                    f,
                    "    port {published}:{}/{:?} {:?}",
                    p.target, p.protocol, p.mode
                )?;
            }
            let nets: Vec<&str> = s.networks.iter().map(|n| n.name.as_str()).collect();
            if !nets.is_empty() {
                writeln!(f, "    networks {}", nets.join(", "))?;
            }
        }
        Ok(())
    }
}

/// `<env>_<stack>`, the name the bash system deployed a stack under (FORMAT.md).
pub fn namespace(stack: &str, env: &str) -> String {
    format!("{env}_{stack}")
}

/// Render `stack` for environment `env` of `d`. Variables must be plain text here; for secret
/// references (`{"env": …}`, `{"file": …}`) use [`render_with`]. Pure.
pub fn render(d: &DesiredState, stack: &str, env: &str) -> Result<RenderedStack, StackError> {
    render_with(d, stack, env, &|s| match s {
        Secret::Plain(v) => Ok(v.clone()),
        other => Err(format!(
            "{other} is a reference, not resolved by this render"
        )),
    })
}

/// [`render`] with `resolve` turning each variable's [`Secret`] into its value (its error
/// must not contain the value).
pub fn render_with(
    d: &DesiredState,
    stack: &str,
    env: &str,
    resolve: &dyn Fn(&Secret) -> Result<String, String>,
) -> Result<RenderedStack, StackError> {
    let s = d
        .stacks
        .get(stack)
        .ok_or_else(|| StackError::UnknownStack {
            stack: stack.into(),
        })?;
    let e = s
        .environments
        .get(env)
        .ok_or_else(|| StackError::UnknownEnvironment {
            stack: stack.into(),
            env: env.into(),
            known: s
                .environments
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let compose = s.compose.as_ref().ok_or_else(|| StackError::NoCompose {
        stack: stack.into(),
    })?;
    let mut vars = BTreeMap::new();
    for (name, secret) in &e.variables {
        let value = resolve(secret).map_err(|reason| StackError::Variable {
            name: name.clone(),
            reason,
        })?;
        vars.insert(name.clone(), value);
    }
    let ns = namespace(stack, env);
    let (files, refs) = environment_files(&ns, &e.files)?;
    let mut out = render_parts(&ns, compose, &vars, &e.traefik_labels, &refs)?;
    out.files = files;
    Ok(out)
}

/// The config base name of host file `path` in stack `namespace`: `<namespace>_<stem>`, the
/// stem (file name without its last extension; `.env` stays `env`) reduced to the characters
/// Swarm allows (`[A-Za-z0-9_.-]`, others become `_`, starting and ending alphanumeric; empty:
/// `file`), cut so that a content version (`-` and 12 hex) fits Swarm's 64 characters.
pub fn config_base(namespace: &str, path: &std::path::Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let stem = if clean.is_empty() { "file" } else { clean };
    let full: String = format!("{namespace}_{stem}")
        .chars()
        .take(MAX_OBJECT_NAME - VERSION_SUFFIX_LEN)
        .collect();
    full.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The environment's files as config references (one per file, the same in every service)
/// and the base → host file list; an error when two files share a base name or a
/// destination (validation reports the destinations with their location too).
fn environment_files(
    namespace: &str,
    files: &[StackFile],
) -> Result<(Vec<StackFileRef>, Vec<FileRef>), StackError> {
    let mut out: Vec<StackFileRef> = Vec::new();
    let mut refs: Vec<FileRef> = Vec::new();
    for f in files {
        let fail = |reason: String, hint: &str| StackError::EnvironmentFile {
            file: f.source.clone(),
            reason,
            hint: hint.into(),
        };
        if !f.destination.starts_with('/') {
            return Err(fail(
                format!("`{}` is not an absolute path", f.destination),
                "give the absolute path of the file in the container, e.g. `/app/.env`",
            ));
        }
        let base = config_base(namespace, &f.path);
        if out.iter().any(|o| o.base == base) {
            return Err(fail(
                format!("its config name `{base}` is also another file's"),
                "rename one of the files (the config is named after the file's stem)",
            ));
        }
        if refs.iter().any(|r| r.target == f.destination) {
            return Err(fail(
                format!("`{}` is also another file's destination", f.destination),
                "each file of an environment needs its own destination",
            ));
        }
        refs.push(FileRef {
            source: base.clone(),
            target: f.destination.clone(),
            uid: "0".into(),
            gid: "0".into(),
            mode: FILE_MODE,
        });
        out.push(StackFileRef {
            base,
            path: f.path.clone(),
        });
    }
    Ok((out, refs))
}

/// Render a parsed compose file under `namespace` with `vars` and the Traefik labels per
/// service (`key=value` each). Pure.
pub fn render_compose(
    namespace: &str,
    compose: &Value,
    vars: &BTreeMap<String, String>,
    traefik_labels: &BTreeMap<String, Vec<String>>,
) -> Result<RenderedStack, StackError> {
    render_parts(namespace, compose, vars, traefik_labels, &[])
}

/// [`render_compose`] with `files` added to every service's configs.
fn render_parts(
    namespace: &str,
    compose: &Value,
    vars: &BTreeMap<String, String>,
    traefik_labels: &BTreeMap<String, Vec<String>>,
    files: &[FileRef],
) -> Result<RenderedStack, StackError> {
    let doc = interpolate(compose, vars, "")?;
    let top = object(&doc, "")?;
    for key in top.keys() {
        if !matches!(
            key.as_str(),
            "version" | "services" | "networks" | "volumes" | "secrets" | "configs"
        ) && !key.starts_with("x-")
        {
            return Err(unsupported(
                &pointer_push("", key),
                format!("the top-level key `{key}`"),
                "docker stack deploy reads services, networks, volumes, secrets and configs",
            ));
        }
    }
    let networks = top_networks(namespace, top.get("networks"))?;
    let volumes = top_volumes(namespace, top.get("volumes"))?;
    let secrets = top_objects(top.get("secrets"), "/secrets", "secret")?;
    let configs = top_objects(top.get("configs"), "/configs", "config")?;
    let services_v = top.get("services").ok_or_else(|| {
        invalid(
            "",
            "the compose file has no `services`",
            "define at least one service",
        )
    })?;
    let services_m = object(services_v, "/services")?;
    for svc in traefik_labels.keys() {
        if !services_m.contains_key(svc) {
            return Err(StackError::TraefikService {
                service: svc.clone(),
            });
        }
    }
    let ctx = Ctx {
        namespace,
        networks: &networks,
        volumes: &volumes,
        secrets: &secrets,
        configs: &configs,
        vars,
        files,
    };
    let mut services = Vec::new();
    let mut used_nets = BTreeMap::new();
    let mut used_secrets = std::collections::BTreeSet::new();
    let mut used_configs = std::collections::BTreeSet::new();
    for (key, v) in services_m {
        if key.starts_with("x-") {
            continue;
        }
        let ptr = pointer_push("/services", key);
        let traefik = traefik_labels.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let (svc, nets) = ctx.service(key, v, &ptr, traefik)?;
        for n in nets {
            used_nets.insert(n.key.clone(), n);
        }
        used_secrets.extend(svc.secrets.iter().map(|s| s.source.clone()));
        used_configs.extend(svc.configs.iter().map(|s| s.source.clone()));
        services.push(svc);
    }
    Ok(RenderedStack {
        namespace: namespace.into(),
        services,
        networks: used_nets.into_values().collect(),
        secrets: used_secrets.into_iter().collect(),
        configs: used_configs.into_iter().collect(),
        files: Vec::new(),
    })
}

// ---- reading JSON values -------------------------------------------------------------------

fn object<'a>(v: &'a Value, ptr: &str) -> Result<&'a Map<String, Value>, StackError> {
    v.as_object()
        .ok_or_else(|| invalid(ptr, "expected a mapping", "see the Compose specification"))
}

fn string(v: &Value, ptr: &str) -> Result<String, StackError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(invalid(ptr, "expected a string", "quote the value")),
    }
}

/// A scalar as text (compose allows numbers and booleans where it means strings).
fn scalar(v: &Value, ptr: &str) -> Result<String, StackError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(invalid(ptr, "expected a string", "quote the value")),
    }
}

fn boolean(v: &Value, ptr: &str) -> Result<bool, StackError> {
    v.as_bool()
        .ok_or_else(|| invalid(ptr, "expected true or false", "write true or false"))
}

fn uint(v: &Value, ptr: &str) -> Result<u64, StackError> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid(ptr, "expected a non-negative integer", "write a number"))
}

fn port(v: &Value, ptr: &str) -> Result<u16, StackError> {
    u16::try_from(uint(v, ptr)?)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid(ptr, "not a port number", "ports are 1–65535"))
}

fn string_list(v: &Value, ptr: &str) -> Result<Vec<String>, StackError> {
    let items = v
        .as_array()
        .ok_or_else(|| invalid(ptr, "expected a list", "write a YAML list"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| scalar(item, &pointer_push(ptr, &i.to_string())))
        .collect()
}

/// A string map in either compose form: `{k: v}` or `["k=v"]`. A key without a value (`k`
/// in the list form, `k: null` in the map form) is `None`.
fn map_or_list(v: &Value, ptr: &str) -> Result<Vec<(String, Option<String>)>, StackError> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, item)| {
                let p = pointer_push(ptr, k);
                Ok((
                    k.clone(),
                    match item {
                        Value::Null => None,
                        other => Some(scalar(other, &p)?),
                    },
                ))
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let text = string(item, &pointer_push(ptr, &i.to_string()))?;
                Ok(match text.split_once('=') {
                    Some((k, val)) => (k.to_string(), Some(val.to_string())),
                    None => (text, None),
                })
            })
            .collect(),
        _ => Err(invalid(
            ptr,
            "expected a mapping or a list of `key=value`",
            "see the Compose specification",
        )),
    }
}

fn labels(v: &Value, ptr: &str) -> Result<BTreeMap<String, String>, StackError> {
    Ok(map_or_list(v, ptr)?
        .into_iter()
        .map(|(k, val)| (k, val.unwrap_or_default()))
        .collect())
}

/// Reject keys other than `allowed` (and `x-` extensions) of the mapping at `ptr`.
fn only(m: &Map<String, Value>, ptr: &str, allowed: &[&str], what: &str) -> Result<(), StackError> {
    match m
        .keys()
        .find(|k| !allowed.contains(&k.as_str()) && !k.starts_with("x-"))
    {
        Some(k) => Err(unsupported(
            &pointer_push(ptr, k),
            format!("`{k}` in {what}"),
            format!("phoenix supports {} here", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Words of a command string, as a POSIX shell splits them (quotes, backslashes; no
/// expansion).
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn command(v: &Value, ptr: &str) -> Result<Vec<String>, StackError> {
    match v {
        Value::String(s) => split_words(s)
            .map_err(|e| invalid(ptr, e, "close the quote, or write the command as a list")),
        Value::Array(_) => string_list(v, ptr),
        _ => Err(invalid(
            ptr,
            "expected a string or a list",
            "write the command as a list of words",
        )),
    }
}

/// A Go duration (`1h2m3.5s`, `500ms`) in nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    // Rounded to whole nanoseconds; far below i64::MAX for any sensible duration.
    (total.is_finite() && total < 9.0e18).then_some(total.round() as i64)
}

fn duration(v: &Value, ptr: &str) -> Result<i64, StackError> {
    let s = string(v, ptr)?;
    parse_duration(&s).ok_or_else(|| {
        invalid(
            ptr,
            format!("`{s}` is not a duration"),
            "write a duration such as 10s, 1m30s or 500ms",
        )
    })
}

/// `64m`, `1g`, `512k`, `100` (bytes).
fn bytes(v: &Value, ptr: &str) -> Result<i64, StackError> {
    let bad = || {
        invalid(
            ptr,
            "not a size",
            "write bytes, or a number with k, m or g (1024-based)",
        )
    };
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        Value::String(s) => {
            let lower = s.trim().to_ascii_lowercase();
            let lower = lower.strip_suffix('b').unwrap_or(&lower);
            let (num, mult) = match lower.char_indices().last() {
                Some((i, 'k')) => (&lower[..i], 1i64 << 10),
                Some((i, 'm')) => (&lower[..i], 1 << 20),
                Some((i, 'g')) => (&lower[..i], 1 << 30),
                _ => (lower, 1),
            };
            num.parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(mult))
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

// ---- top-level objects ---------------------------------------------------------------------

/// The Swarm name of a top-level object: external (`name` or the key; legacy `external:
/// {name}`) or stack-local (`name`, else `<namespace>_<key>`). (name, external).
fn object_name(
    namespace: &str,
    key: &str,
    m: &Map<String, Value>,
    ptr: &str,
) -> Result<(String, bool), StackError> {
    let explicit = m
        .get("name")
        .map(|v| string(v, &pointer_push(ptr, "name")))
        .transpose()?;
    let external = match m.get("external") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(e)) => {
            let p = pointer_push(ptr, "external");
            only(e, &p, &["name"], "a legacy `external`")?;
            if let Some(n) = e.get("name") {
                return Ok((string(n, &pointer_push(&p, "name"))?, true));
            }
            true
        }
        Some(_) => {
            return Err(invalid(
                &pointer_push(ptr, "external"),
                "expected true or false",
                "write `external: true`",
            ));
        }
    };
    Ok(match (explicit, external) {
        (Some(n), _) => (n, external),
        (None, true) => (key.to_string(), true),
        (None, false) => (format!("{namespace}_{key}"), false),
    })
}

/// One entry of a top-level section: key, JSON pointer, definition.
type TopEntry<'a> = (&'a String, String, &'a Map<String, Value>);

/// The entries of a top-level section (`/networks`, `/volumes`): key, JSON pointer and
/// definition (`key:` with no value is an empty one), `x-` extensions skipped, each checked to
/// use only `allowed` keys.
fn top_entries<'a>(
    v: Option<&'a Value>,
    base: &str,
    allowed: &[&str],
    what: &str,
    empty: &'a Map<String, Value>,
) -> Result<Vec<TopEntry<'a>>, StackError> {
    let m = match v {
        None | Some(Value::Null) => empty,
        Some(v) => object(v, base)?,
    };
    let mut out = Vec::new();
    for (key, v) in m.iter().filter(|(k, _)| !k.starts_with("x-")) {
        let ptr = pointer_push(base, key);
        let def = match v {
            Value::Null => empty,
            other => object(other, &ptr)?,
        };
        only(def, &ptr, allowed, what)?;
        out.push((key, ptr, def));
    }
    Ok(out)
}

fn top_networks(
    namespace: &str,
    v: Option<&Value>,
) -> Result<BTreeMap<String, StackNetwork>, StackError> {
    let mut out = BTreeMap::new();
    let empty = Map::new();
    let allowed = [
        "name",
        "external",
        "driver",
        "driver_opts",
        "attachable",
        "internal",
        "labels",
    ];
    for (key, ptr, def) in top_entries(v, "/networks", &allowed, "a network", &empty)? {
        let (name, external) = object_name(namespace, key, def, &ptr)?;
        let driver_opts = match def.get("driver_opts") {
            Some(v) => labels(v, &pointer_push(&ptr, "driver_opts"))?,
            None => BTreeMap::new(),
        };
        out.insert(
            key.clone(),
            StackNetwork {
                key: key.clone(),
                name,
                external,
                driver: def
                    .get("driver")
                    .map(|v| string(v, &pointer_push(&ptr, "driver")))
                    .transpose()?
                    .unwrap_or_else(|| "overlay".into()),
                driver_opts,
                attachable: def
                    .get("attachable")
                    .map(|v| boolean(v, &pointer_push(&ptr, "attachable")))
                    .transpose()?
                    .unwrap_or(false),
                internal: def
                    .get("internal")
                    .map(|v| boolean(v, &pointer_push(&ptr, "internal")))
                    .transpose()?
                    .unwrap_or(false),
                labels: def
                    .get("labels")
                    .map(|v| labels(v, &pointer_push(&ptr, "labels")))
                    .transpose()?
                    .unwrap_or_default(),
            },
        );
    }
    if !out.contains_key("default") {
        out.insert(
            "default".into(),
            StackNetwork {
                key: "default".into(),
                name: format!("{namespace}_default"),
                external: false,
                driver: "overlay".into(),
                driver_opts: BTreeMap::new(),
                attachable: false,
                internal: false,
                labels: BTreeMap::new(),
            },
        );
    }
    Ok(out)
}

/// A top-level volume: its Swarm name, external or not, driver, options and labels.
struct TopVolume {
    name: String,
    external: bool,
    driver: Option<String>,
    driver_opts: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

fn top_volumes(
    namespace: &str,
    v: Option<&Value>,
) -> Result<BTreeMap<String, TopVolume>, StackError> {
    let mut out = BTreeMap::new();
    let empty = Map::new();
    let allowed = ["name", "external", "driver", "driver_opts", "labels"];
    for (key, ptr, def) in top_entries(v, "/volumes", &allowed, "a volume", &empty)? {
        let (name, external) = object_name(namespace, key, def, &ptr)?;
        out.insert(
            key.clone(),
            TopVolume {
                name,
                external,
                driver: def
                    .get("driver")
                    .map(|v| string(v, &pointer_push(&ptr, "driver")))
                    .transpose()?,
                driver_opts: def
                    .get("driver_opts")
                    .map(|v| labels(v, &pointer_push(&ptr, "driver_opts")))
                    .transpose()?
                    .unwrap_or_default(),
                labels: def
                    .get("labels")
                    .map(|v| labels(v, &pointer_push(&ptr, "labels")))
                    .transpose()?
                    .unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// Top-level secrets or configs: key → Swarm name. Only external ones are supported.
fn top_objects(
    v: Option<&Value>,
    base: &str,
    what: &str,
) -> Result<BTreeMap<String, String>, StackError> {
    let mut out = BTreeMap::new();
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(out);
    };
    for (key, v) in object(v, base)? {
        if key.starts_with("x-") {
            continue;
        }
        let ptr = pointer_push(base, key);
        let def = object(v, &ptr)?;
        only(def, &ptr, &["name", "external"], &format!("a {what}"))?;
        let (name, external) = object_name("", key, def, &ptr)?;
        if !external {
            return Err(unsupported(
                &ptr,
                format!("a {what} that is not `external`"),
                format!("create the {what} on the manager first and declare it `external: true`"),
            ));
        }
        out.insert(key.clone(), name);
    }
    Ok(out)
}

// ---- services ------------------------------------------------------------------------------

struct Ctx<'a> {
    namespace: &'a str,
    networks: &'a BTreeMap<String, StackNetwork>,
    volumes: &'a BTreeMap<String, TopVolume>,
    secrets: &'a BTreeMap<String, String>,
    configs: &'a BTreeMap<String, String>,
    vars: &'a BTreeMap<String, String>,
    /// The environment's files, mounted in every service.
    files: &'a [FileRef],
}

const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "labels",
    "networks",
    "ports",
    "secrets",
    "configs",
    "volumes",
    "deploy",
    "hostname",
    "working_dir",
    "user",
    "stop_signal",
    "stop_grace_period",
    "read_only",
    "init",
    "tty",
];

impl Ctx<'_> {
    fn service(
        &self,
        key: &str,
        v: &Value,
        ptr: &str,
        traefik: &[String],
    ) -> Result<(RenderedService, Vec<StackNetwork>), StackError> {
        let m = object(v, ptr)?;
        only(m, ptr, SERVICE_KEYS, "a service")?;
        let at = |k: &str| pointer_push(ptr, k);
        let opt_string = |k: &str| m.get(k).map(|v| string(v, &at(k))).transpose();
        let opt_bool = |k: &str| m.get(k).map(|v| boolean(v, &at(k))).transpose();
        let image = m
            .get("image")
            .map(|v| string(v, &at("image")))
            .transpose()?
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                invalid(
                    ptr,
                    "the service has no `image`",
                    "Swarm services run images; `build` is not supported",
                )
            })?;
        let env = match m.get("environment") {
            Some(v) => self.environment(v, &at("environment"))?,
            None => Vec::new(),
        };
        let deploy = match m.get("deploy") {
            Some(v) => Deploy::read(v, &at("deploy"))?,
            None => Deploy::default(),
        };
        let mut service_labels = deploy.labels.clone();
        for (i, l) in traefik.iter().enumerate() {
            let (k, val) = l.split_once('=').ok_or_else(|| StackError::TraefikLabel {
                service: key.into(),
                index: i,
            })?;
            if k.is_empty() {
                return Err(StackError::TraefikLabel {
                    service: key.into(),
                    index: i,
                });
            }
            service_labels.insert(k.to_string(), val.to_string());
        }
        let (networks, used) = self.service_networks(m.get("networks"), &at("networks"))?;
        let secrets = self.files(m.get("secrets"), &at("secrets"), true)?;
        let mut svc = RenderedService {
            key: key.into(),
            name: format!("{}_{key}", self.namespace),
            image,
            entrypoint: m
                .get("entrypoint")
                .map(|v| command(v, &at("entrypoint")))
                .transpose()?,
            command: m
                .get("command")
                .map(|v| command(v, &at("command")))
                .transpose()?,
            env,
            labels: service_labels,
            container_labels: m
                .get("labels")
                .map(|v| labels(v, &at("labels")))
                .transpose()?
                .unwrap_or_default(),
            networks,
            ports: match m.get("ports") {
                Some(v) => ports(v, &at("ports"))?,
                None => Vec::new(),
            },
            endpoint_mode: deploy.endpoint_mode,
            configs: self.configs_with_files(m.get("configs"), &at("configs"), &secrets)?,
            secrets,
            mounts: self.mounts(m.get("volumes"), &at("volumes"))?,
            mode: deploy.mode,
            constraints: deploy.constraints,
            preferences: deploy.preferences,
            max_replicas_per_node: deploy.max_replicas_per_node,
            restart: deploy.restart,
            hostname: opt_string("hostname")?,
            working_dir: opt_string("working_dir")?,
            user: opt_string("user")?,
            stop_signal: opt_string("stop_signal")?,
            stop_grace_period_ns: m
                .get("stop_grace_period")
                .map(|v| duration(v, &at("stop_grace_period")))
                .transpose()?,
            read_only: opt_bool("read_only")?,
            init: opt_bool("init")?,
            tty: opt_bool("tty")?,
            sha256: String::new(),
        };
        svc.sha256 = content_hash(&svc);
        Ok((svc, used))
    }

    /// Sorted by name; a name without a value takes the stack variable of that name (what
    /// compose does with the shell's environment).
    fn environment(&self, v: &Value, ptr: &str) -> Result<Vec<EnvVar>, StackError> {
        let mut out = BTreeMap::new();
        for (name, value) in map_or_list(v, ptr)? {
            let value = match value {
                Some(v) => v,
                None => self.vars.get(&name).cloned().ok_or_else(|| {
                    invalid(
                        &pointer_push(ptr, &name),
                        format!("`{name}` has no value and is not a stack variable"),
                        format!(
                            "give it a value, or add `{name}` to the environment's `variables`"
                        ),
                    )
                })?,
            };
            out.insert(name, value);
        }
        Ok(out
            .into_iter()
            .map(|(name, value)| EnvVar { name, value })
            .collect())
    }

    fn network(&self, key: &str, ptr: &str) -> Result<&StackNetwork, StackError> {
        self.networks.get(key).ok_or_else(|| {
            invalid(
                ptr,
                format!("network `{key}` is not declared under the top-level `networks`"),
                format!("declare it: `networks: {{{key}: {{external: true}}}}` or a stack network"),
            )
        })
    }

    fn service_networks(
        &self,
        v: Option<&Value>,
        ptr: &str,
    ) -> Result<(Vec<NetworkAttachment>, Vec<StackNetwork>), StackError> {
        let mut wanted: Vec<(String, Vec<String>, String)> = Vec::new();
        match v {
            None => wanted.push(("default".into(), Vec::new(), ptr.into())),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let p = pointer_push(ptr, &i.to_string());
                    wanted.push((string(item, &p)?, Vec::new(), p));
                }
            }
            Some(Value::Object(m)) => {
                for (k, item) in m {
                    let p = pointer_push(ptr, k);
                    let aliases = match item {
                        Value::Null => Vec::new(),
                        other => {
                            let o = object(other, &p)?;
                            only(o, &p, &["aliases"], "a service network")?;
                            o.get("aliases")
                                .map(|a| string_list(a, &pointer_push(&p, "aliases")))
                                .transpose()?
                                .unwrap_or_default()
                        }
                    };
                    wanted.push((k.clone(), aliases, p));
                }
            }
            Some(_) => {
                return Err(invalid(
                    ptr,
                    "expected a list or a mapping",
                    "list the networks",
                ));
            }
        }
        let mut attach = Vec::new();
        let mut used = Vec::new();
        for (key, aliases, p) in wanted {
            let n = self.network(&key, &p)?;
            attach.push(NetworkAttachment {
                name: n.name.clone(),
                aliases,
            });
            used.push(n.clone());
        }
        Ok((attach, used))
    }

    /// The service's compose `configs` followed by the environment's files; an error when a
    /// file's destination is already a secret's or config's target of the service.
    fn configs_with_files(
        &self,
        configs: Option<&Value>,
        ptr: &str,
        secrets: &[FileRef],
    ) -> Result<Vec<FileRef>, StackError> {
        let mut out = self.files(configs, ptr, false)?;
        for f in self.files {
            if out.iter().chain(secrets).any(|r| r.target == f.target) {
                return Err(invalid(
                    ptr,
                    format!(
                        "`{}` is the target of one of the service's secrets or configs and the \
                         destination of an environment file",
                        f.target
                    ),
                    "give the environment file another `destination_in_container`",
                ));
            }
            out.push(f.clone());
        }
        Ok(out)
    }

    /// Service `secrets` (`secret` = true) or `configs`: short form `name`, long form
    /// `{source, target, uid, gid, mode}`.
    fn files(
        &self,
        v: Option<&Value>,
        ptr: &str,
        secret: bool,
    ) -> Result<Vec<FileRef>, StackError> {
        let Some(v) = v else {
            return Ok(Vec::new());
        };
        let items = v
            .as_array()
            .ok_or_else(|| invalid(ptr, "expected a list", "list the names"))?;
        let (table, what) = if secret {
            (self.secrets, "secrets")
        } else {
            (self.configs, "configs")
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = pointer_push(ptr, &i.to_string());
            let (source, target, uid, gid, mode) = match item {
                Value::String(s) => (s.clone(), None, None, None, None),
                Value::Object(o) => {
                    only(
                        o,
                        &p,
                        &["source", "target", "uid", "gid", "mode"],
                        "a service secret or config",
                    )?;
                    let field = |k: &str| {
                        o.get(k)
                            .map(|v| scalar(v, &pointer_push(&p, k)))
                            .transpose()
                    };
                    let source = field("source")?
                        .ok_or_else(|| invalid(&p, "no `source`", "name the secret or config"))?;
                    let mode = o
                        .get("mode")
                        .map(|v| file_mode(v, &pointer_push(&p, "mode")))
                        .transpose()?;
                    (source, field("target")?, field("uid")?, field("gid")?, mode)
                }
                _ => {
                    return Err(invalid(
                        &p,
                        "expected a name or a mapping",
                        "write the name",
                    ));
                }
            };
            let name = table.get(&source).ok_or_else(|| {
                invalid(
                    &p,
                    format!("`{source}` is not declared under the top-level `{what}`"),
                    format!("declare it: `{what}: {{{source}: {{external: true}}}}`"),
                )
            })?;
            let target = target.unwrap_or_else(|| source.clone());
            let target = if target.starts_with('/') {
                target
            } else if secret {
                format!("{SECRETS_DIR}/{target}")
            } else {
                format!("/{target}")
            };
            out.push(FileRef {
                source: name.clone(),
                target,
                uid: uid.unwrap_or_else(|| "0".into()),
                gid: gid.unwrap_or_else(|| "0".into()),
                mode: mode.unwrap_or(0o444),
            });
        }
        Ok(out)
    }

    fn mounts(&self, v: Option<&Value>, ptr: &str) -> Result<Vec<MountSpec>, StackError> {
        let Some(v) = v else {
            return Ok(Vec::new());
        };
        let items = v
            .as_array()
            .ok_or_else(|| invalid(ptr, "expected a list", "list the volumes"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let p = pointer_push(ptr, &i.to_string());
                match item {
                    Value::String(s) => self.short_mount(s, &p),
                    Value::Object(o) => self.long_mount(o, &p),
                    _ => Err(invalid(
                        &p,
                        "expected `source:target[:ro]` or a mapping",
                        "see the Compose specification",
                    )),
                }
            })
            .collect()
    }

    /// A volume source that is not a path: a top-level volume.
    fn named_volume(
        &self,
        source: &str,
        target: String,
        ptr: &str,
    ) -> Result<MountSpec, StackError> {
        let top = self.volumes.get(source).ok_or_else(|| {
            invalid(
                ptr,
                format!("volume `{source}` is not declared under the top-level `volumes`"),
                format!("declare it: `volumes: {{{source}: {{}}}}`, or use an absolute host path"),
            )
        })?;
        let mut m = MountSpec::new(MountKind::Volume, Some(top.name.clone()), target);
        if !top.external {
            m.volume_driver = top.driver.clone();
            m.volume_driver_opts = top.driver_opts.clone();
            m.volume_labels = top.labels.clone();
            m.volume_labels
                .insert(NAMESPACE_LABEL.into(), self.namespace.into());
        }
        Ok(m)
    }

    fn source_mount(
        &self,
        source: &str,
        target: String,
        ptr: &str,
    ) -> Result<MountSpec, StackError> {
        if source.starts_with('/') {
            Ok(MountSpec::new(MountKind::Bind, Some(source.into()), target))
        } else if source.starts_with('.') || source.starts_with('~') {
            Err(unsupported(
                ptr,
                format!("the relative host path `{source}`"),
                "a Swarm task runs on any node: give an absolute host path",
            ))
        } else {
            self.named_volume(source, target, ptr)
        }
    }

    fn short_mount(&self, s: &str, ptr: &str) -> Result<MountSpec, StackError> {
        let parts: Vec<&str> = s.split(':').collect();
        let abs = |t: &str| -> Result<String, StackError> {
            if t.starts_with('/') {
                Ok(t.to_string())
            } else {
                Err(invalid(
                    ptr,
                    format!("the container path `{t}` is not absolute"),
                    "write `source:/absolute/path`",
                ))
            }
        };
        match parts.as_slice() {
            [target] => Ok(MountSpec::new(MountKind::Volume, None, abs(target)?)),
            [source, target] => self.source_mount(source, abs(target)?, ptr),
            [source, target, mode] => {
                let mut m = self.source_mount(source, abs(target)?, ptr)?;
                match *mode {
                    "ro" => m.read_only = true,
                    "rw" => {}
                    other => {
                        return Err(unsupported(
                            ptr,
                            format!("the volume mode `{other}`"),
                            "use `ro` or `rw`",
                        ));
                    }
                }
                Ok(m)
            }
            _ => Err(invalid(
                ptr,
                format!("`{s}` is not `[source:]target[:mode]`"),
                "see the Compose specification",
            )),
        }
    }

    fn long_mount(&self, o: &Map<String, Value>, ptr: &str) -> Result<MountSpec, StackError> {
        only(
            o,
            ptr,
            &[
                "type",
                "source",
                "target",
                "read_only",
                "bind",
                "volume",
                "tmpfs",
            ],
            "a service volume",
        )?;
        let at = |k: &str| pointer_push(ptr, k);
        let kind = o
            .get("type")
            .map(|v| string(v, &at("type")))
            .transpose()?
            .ok_or_else(|| invalid(ptr, "no `type`", "write type: bind, volume or tmpfs"))?;
        let target = o
            .get("target")
            .map(|v| string(v, &at("target")))
            .transpose()?
            .ok_or_else(|| invalid(ptr, "no `target`", "name the path in the container"))?;
        let source = o
            .get("source")
            .map(|v| string(v, &at("source")))
            .transpose()?;
        let mut m = match (kind.as_str(), source) {
            ("bind", Some(s)) if s.starts_with('/') => {
                MountSpec::new(MountKind::Bind, Some(s), target)
            }
            ("bind", _) => {
                return Err(invalid(
                    &at("source"),
                    "a bind mount needs an absolute host path",
                    "write `source: /absolute/path`",
                ));
            }
            ("volume", Some(s)) => self.named_volume(&s, target, &at("source"))?,
            ("volume", None) => MountSpec::new(MountKind::Volume, None, target),
            ("tmpfs", None) => MountSpec::new(MountKind::Tmpfs, None, target),
            ("tmpfs", Some(_)) => {
                return Err(invalid(
                    &at("source"),
                    "a tmpfs mount has no source",
                    "remove `source`",
                ));
            }
            (other, _) => {
                return Err(unsupported(
                    &at("type"),
                    format!("the mount type `{other}`"),
                    "use bind, volume or tmpfs",
                ));
            }
        };
        if let Some(v) = o.get("read_only") {
            m.read_only = boolean(v, &at("read_only"))?;
        }
        let sub = |k: &str,
                   expected: MountKind,
                   allowed: &[&str]|
         -> Result<Option<&Map<String, Value>>, StackError> {
            let Some(v) = o.get(k) else { return Ok(None) };
            let p = at(k);
            if m.kind != expected {
                return Err(invalid(
                    &p,
                    format!("`{k}` options on a {kind} mount"),
                    "remove them",
                ));
            }
            let sm = object(v, &p)?;
            only(sm, &p, allowed, &format!("`{k}` options"))?;
            Ok(Some(sm))
        };
        if let Some(b) = sub("bind", MountKind::Bind, &["propagation"])? {
            m.bind_propagation = b
                .get("propagation")
                .map(|v| string(v, &pointer_push(&at("bind"), "propagation")))
                .transpose()?;
        }
        if let Some(vo) = sub("volume", MountKind::Volume, &["nocopy"])?
            && let Some(n) = vo.get("nocopy")
        {
            m.volume_nocopy = boolean(n, &pointer_push(&at("volume"), "nocopy"))?;
        }
        if let Some(t) = sub("tmpfs", MountKind::Tmpfs, &["size", "mode"])? {
            let p = at("tmpfs");
            m.tmpfs_size = t
                .get("size")
                .map(|v| bytes(v, &pointer_push(&p, "size")))
                .transpose()?;
            m.tmpfs_mode = t
                .get("mode")
                .map(|v| file_mode(v, &pointer_push(&p, "mode")).map(i64::from))
                .transpose()?;
        }
        Ok(m)
    }
}

/// A file mode: a number (as YAML gave it) or an octal string such as `"0440"`.
fn file_mode(v: &Value, ptr: &str) -> Result<u32, StackError> {
    let bad = || {
        invalid(
            ptr,
            "not a file mode",
            "write an octal string such as \"0440\"",
        )
    };
    let mode = match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        _ => None,
    }
    .ok_or_else(bad)?;
    if mode > 0o7777 {
        return Err(bad());
    }
    Ok(mode)
}

/// `deploy` of a service.
struct Deploy {
    mode: ServiceMode,
    labels: BTreeMap<String, String>,
    constraints: Vec<String>,
    preferences: Vec<String>,
    max_replicas_per_node: Option<u64>,
    restart: Option<RestartPolicy>,
    endpoint_mode: EndpointMode,
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            mode: ServiceMode::Replicated { replicas: 1 },
            labels: BTreeMap::new(),
            constraints: Vec::new(),
            preferences: Vec::new(),
            max_replicas_per_node: None,
            restart: None,
            endpoint_mode: EndpointMode::Vip,
        }
    }
}

impl Deploy {
    fn read(v: &Value, ptr: &str) -> Result<Deploy, StackError> {
        let m = object(v, ptr)?;
        only(
            m,
            ptr,
            &[
                "mode",
                "replicas",
                "labels",
                "placement",
                "restart_policy",
                "endpoint_mode",
            ],
            "`deploy`",
        )?;
        let at = |k: &str| pointer_push(ptr, k);
        let mut d = Deploy::default();
        let replicas = m
            .get("replicas")
            .map(|v| uint(v, &at("replicas")))
            .transpose()?;
        let mode = m.get("mode").map(|v| string(v, &at("mode"))).transpose()?;
        d.mode = match (mode.as_deref(), replicas) {
            (None | Some("replicated"), r) => ServiceMode::Replicated {
                replicas: r.unwrap_or(1),
            },
            (Some("global"), None) => ServiceMode::Global,
            (Some("global"), Some(_)) => {
                return Err(invalid(
                    &at("replicas"),
                    "a global service has no replica count",
                    "remove `replicas`, or use mode: replicated",
                ));
            }
            (Some(other), _) => {
                return Err(unsupported(
                    &at("mode"),
                    format!("the mode `{other}`"),
                    "use replicated or global",
                ));
            }
        };
        if let Some(v) = m.get("labels") {
            d.labels = labels(v, &at("labels"))?;
        }
        if let Some(v) = m.get("endpoint_mode") {
            d.endpoint_mode = match string(v, &at("endpoint_mode"))?.as_str() {
                "vip" => EndpointMode::Vip,
                "dnsrr" => EndpointMode::Dnsrr,
                other => {
                    return Err(invalid(
                        &at("endpoint_mode"),
                        format!("unknown endpoint mode `{other}`"),
                        "use vip or dnsrr",
                    ));
                }
            };
        }
        if let Some(v) = m.get("placement") {
            let p = at("placement");
            let pm = object(v, &p)?;
            only(
                pm,
                &p,
                &["constraints", "preferences", "max_replicas_per_node"],
                "`placement`",
            )?;
            if let Some(c) = pm.get("constraints") {
                d.constraints = string_list(c, &pointer_push(&p, "constraints"))?;
            }
            if let Some(prefs) = pm.get("preferences") {
                let pp = pointer_push(&p, "preferences");
                let items = prefs
                    .as_array()
                    .ok_or_else(|| invalid(&pp, "expected a list", "list `spread:` entries"))?;
                for (i, item) in items.iter().enumerate() {
                    let ip = pointer_push(&pp, &i.to_string());
                    let o = object(item, &ip)?;
                    only(o, &ip, &["spread"], "a placement preference")?;
                    let s = o.get("spread").ok_or_else(|| {
                        invalid(&ip, "no `spread`", "write `spread: node.labels.x`")
                    })?;
                    d.preferences.push(string(s, &pointer_push(&ip, "spread"))?);
                }
            }
            d.max_replicas_per_node = pm
                .get("max_replicas_per_node")
                .map(|v| uint(v, &pointer_push(&p, "max_replicas_per_node")))
                .transpose()?;
        }
        if let Some(v) = m.get("restart_policy") {
            let p = at("restart_policy");
            let rm = object(v, &p)?;
            only(
                rm,
                &p,
                &["condition", "delay", "max_attempts", "window"],
                "`restart_policy`",
            )?;
            let rp = |k: &str| pointer_push(&p, k);
            d.restart = Some(RestartPolicy {
                condition: rm
                    .get("condition")
                    .map(|v| match string(v, &rp("condition"))?.as_str() {
                        "none" => Ok(RestartCondition::None),
                        "on-failure" => Ok(RestartCondition::OnFailure),
                        "any" => Ok(RestartCondition::Any),
                        other => Err(invalid(
                            &rp("condition"),
                            format!("unknown restart condition `{other}`"),
                            "use none, on-failure or any",
                        )),
                    })
                    .transpose()?,
                delay_ns: rm
                    .get("delay")
                    .map(|v| duration(v, &rp("delay")))
                    .transpose()?,
                max_attempts: rm
                    .get("max_attempts")
                    .map(|v| uint(v, &rp("max_attempts")))
                    .transpose()?,
                window_ns: rm
                    .get("window")
                    .map(|v| duration(v, &rp("window")))
                    .transpose()?,
            });
        }
        Ok(d)
    }
}

/// Ports in the short (`"[published:]target[/proto]"`, ranges `a-b:c-d`, a bare number) or
/// long form (`{target, published, protocol, mode}`).
fn ports(v: &Value, ptr: &str) -> Result<Vec<PortSpec>, StackError> {
    let items = v
        .as_array()
        .ok_or_else(|| invalid(ptr, "expected a list", "list the ports"))?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = pointer_push(ptr, &i.to_string());
        match item {
            Value::Number(_) => out.push(PortSpec {
                target: port(item, &p)?,
                published: None,
                protocol: Protocol::Tcp,
                mode: PublishMode::Ingress,
            }),
            Value::String(s) => out.extend(short_port(s, &p)?),
            Value::Object(o) => out.push(long_port(o, &p)?),
            _ => {
                return Err(invalid(
                    &p,
                    "expected a port",
                    "write `published:target` or a mapping",
                ));
            }
        }
    }
    Ok(out)
}

fn protocol(s: &str, ptr: &str) -> Result<Protocol, StackError> {
    match s {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        other => Err(invalid(
            ptr,
            format!("unknown protocol `{other}`"),
            "use tcp, udp or sctp",
        )),
    }
}

/// `a` or `a-b` → the ports.
fn port_range(s: &str, ptr: &str) -> Result<Vec<u16>, StackError> {
    let bad = || {
        invalid(
            ptr,
            format!("`{s}` is not a port or a port range"),
            "ports are 1–65535, ranges `low-high`",
        )
    };
    let num = |t: &str| t.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
    match s.split_once('-') {
        None => Ok(vec![num(s)?]),
        Some((lo, hi)) => {
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi {
                return Err(bad());
            }
            Ok((lo..=hi).collect())
        }
    }
}

fn short_port(s: &str, ptr: &str) -> Result<Vec<PortSpec>, StackError> {
    let (spec, proto) = match s.split_once('/') {
        Some((spec, proto)) => (spec, protocol(proto, ptr)?),
        None => (s, Protocol::Tcp),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (published, target) = match parts.as_slice() {
        [t] => (None, port_range(t, ptr)?),
        [p, t] => (Some(port_range(p, ptr)?), port_range(t, ptr)?),
        _ => {
            return Err(unsupported(
                ptr,
                format!("the port `{s}` with a host address"),
                "Swarm publishes on every address of the node: write `published:target`",
            ));
        }
    };
    if published.as_ref().is_some_and(|p| p.len() != target.len()) {
        return Err(invalid(
            ptr,
            format!("`{s}`: the published and target ranges differ in length"),
            "give ranges of the same length",
        ));
    }
    Ok(target
        .iter()
        .enumerate()
        .map(|(i, t)| PortSpec {
            target: *t,
            published: published.as_ref().and_then(|p| p.get(i).copied()),
            protocol: proto,
            mode: PublishMode::Ingress,
        })
        .collect())
}

fn long_port(o: &Map<String, Value>, ptr: &str) -> Result<PortSpec, StackError> {
    only(
        o,
        ptr,
        &["target", "published", "protocol", "mode"],
        "a port",
    )?;
    let at = |k: &str| pointer_push(ptr, k);
    let target = o
        .get("target")
        .map(|v| port(v, &at("target")))
        .transpose()?
        .ok_or_else(|| invalid(ptr, "no `target`", "name the container port"))?;
    Ok(PortSpec {
        target,
        published: o
            .get("published")
            .map(|v| port(v, &at("published")))
            .transpose()?,
        protocol: match o.get("protocol") {
            Some(v) => protocol(&string(v, &at("protocol"))?, &at("protocol"))?,
            None => Protocol::Tcp,
        },
        mode: match o
            .get("mode")
            .map(|v| string(v, &at("mode")))
            .transpose()?
            .as_deref()
        {
            None | Some("ingress") => PublishMode::Ingress,
            Some("host") => PublishMode::Host,
            Some(other) => {
                return Err(invalid(
                    &at("mode"),
                    format!("unknown publish mode `{other}`"),
                    "use host or ingress",
                ));
            }
        },
    })
}

/// SHA-256 over the service's serialised form (without its hash) and its environment values.
fn content_hash(s: &RenderedService) -> String {
    let mut h = Sha256::new();
    h.update(b"phoenix stack service v1\n");
    // Serialising plain data into a Vec cannot fail; an empty input would still be hashed.
    h.update(serde_json::to_vec(s).unwrap_or_default());
    for e in &s.env {
        h.update(b"\0env\0");
        h.update(e.name.as_bytes());
        h.update(b"=");
        h.update(e.value.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use serde_json::json;

    fn homelab() -> DesiredState {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
        phoenix_model::validate_dir(&dir)
            .desired
            .expect("examples/homelab validates")
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn one(compose: Value) -> Result<RenderedStack, StackError> {
        render_compose(
            "production_demo",
            &compose,
            &vars(&[("TAG", "1.2")]),
            &BTreeMap::new(),
        )
    }

    fn err_pointer(compose: Value) -> (String, StackError) {
        let e = one(compose).unwrap_err();
        let p = match &e {
            StackError::Unsupported { pointer, .. } | StackError::Invalid { pointer, .. } => {
                pointer.clone()
            }
            StackError::Interpolation(i) => i.pointer.clone(),
            other => panic!("unexpected {other:?}"),
        };
        (p, e)
    }

    #[test]
    fn homelab_portainer_renders_as_the_bash_system_deployed_it() {
        let d = homelab();
        let s = render(&d, "portainer_service", "production").unwrap();
        assert_eq!(s.namespace, "production_portainer_service");
        assert_eq!(s.services.len(), 1);
        let p = s.service("portainer").unwrap();
        assert_eq!(p.name, "production_portainer_service_portainer");
        assert_eq!(p.image, "portainer/portainer-ce:2.21.5");
        assert_eq!(p.entrypoint, None);
        assert_eq!(
            p.command.as_ref().unwrap()[..2],
            ["-H", "unix:///var/run/docker.sock"]
        );
        assert_eq!(
            p.env,
            [EnvVar {
                name: "TZ".into(),
                value: "America/New_York".into()
            }]
        );
        assert_eq!(p.labels["traefik.enable"], "true");
        assert_eq!(
            p.labels["traefik.http.routers.portainer.rule"],
            "Host(`portainer.internal.thinkheads.ai`)"
        );
        assert_eq!(p.labels.len(), 7);
        assert_eq!(
            p.ports,
            [PortSpec {
                target: 9443,
                published: Some(9443),
                protocol: Protocol::Tcp,
                mode: PublishMode::Host
            }]
        );
        assert_eq!(
            p.networks,
            [NetworkAttachment {
                name: "traefik-public".into(),
                aliases: vec![]
            }]
        );
        assert_eq!(s.networks.len(), 1);
        assert!(s.networks[0].external);
        assert_eq!(
            s.secrets,
            [
                "portainer_admin_password",
                "portainer_tls_cert",
                "portainer_tls_key"
            ]
        );
        assert_eq!(p.secrets[1].target, "/run/secrets/portainer_tls_cert");
        assert_eq!(p.secrets[1].mode, 0o444);
        assert_eq!(p.mounts.len(), 2);
        assert_eq!(p.mounts[0].kind, MountKind::Bind);
        assert_eq!(p.mounts[0].source.as_deref(), Some("/var/run/docker.sock"));
        assert_eq!(p.mounts[1].kind, MountKind::Volume);
        assert_eq!(
            p.mounts[1].source.as_deref(),
            Some("production_portainer_service_portainer_data")
        );
        assert_eq!(p.mode, ServiceMode::Replicated { replicas: 1 });
        assert_eq!(p.constraints, ["node.role == manager"]);
        assert_eq!(p.sha256.len(), 64);
        // Deterministic.
        assert_eq!(render(&d, "portainer_service", "production").unwrap(), s);
        let text = s.to_string();
        assert!(text.contains("service production_portainer_service_portainer"));
        assert!(text.contains("env TZ"));
        assert!(!text.contains("America/New_York"), "{text}");
        assert!(!format!("{s:?}").contains("America/New_York"));
    }

    #[test]
    fn homelab_unknown_names_are_errors() {
        let d = homelab();
        assert!(matches!(
            render(&d, "nope", "production"),
            Err(StackError::UnknownStack { .. })
        ));
        let e = render(&d, "portainer_service", "staging").unwrap_err();
        assert!(e.to_string().contains("it has: production"), "{e}");
    }

    #[test]
    fn secret_references_need_a_resolver_and_never_leak() {
        let mut d = homelab();
        let env = d
            .stacks
            .get_mut("portainer_service")
            .unwrap()
            .environments
            .get_mut("production")
            .unwrap();
        env.variables = vec![("TZ".into(), Secret::Env("PHX_TZ".into()))];
        let e = render(&d, "portainer_service", "production").unwrap_err();
        assert!(matches!(e, StackError::Variable { .. }), "{e}");
        let s = render_with(&d, "portainer_service", "production", &|_| {
            Ok("Europe/Paris".into())
        })
        .unwrap();
        let p = s.service("portainer").unwrap();
        assert_eq!(p.env[0].value, "Europe/Paris");
        assert!(!s.to_string().contains("Europe/Paris"));
        assert!(!format!("{s:?}").contains("Europe/Paris"));
    }

    /// `homelab()` with `files` (source, destination) in portainer_service/production.
    fn with_files(files: &[(&str, &str)]) -> DesiredState {
        let mut d = homelab();
        let stack = d.stacks.get_mut("portainer_service").unwrap();
        let loc = stack.loc.clone();
        let env = stack.environments.get_mut("production").unwrap();
        env.files = files
            .iter()
            .map(|(src, dest)| StackFile {
                source: src.to_string(),
                path: std::path::Path::new("/etc/phoenix").join(src),
                destination: dest.to_string(),
                loc: loc.clone(),
            })
            .collect();
        d
    }

    #[test]
    fn environment_files_are_configs_of_every_service() {
        let plain = render(&homelab(), "portainer_service", "production").unwrap();
        assert!(plain.files.is_empty());
        let d = with_files(&[
            ("stacks/portainer_service/app.env", "/app/.env"),
            ("/srv/conf/settings.json", "/etc/portainer/settings.json"),
        ]);
        let s = render(&d, "portainer_service", "production").unwrap();
        assert_eq!(
            s.files,
            [
                StackFileRef {
                    base: "production_portainer_service_app".into(),
                    path: "/etc/phoenix/stacks/portainer_service/app.env".into(),
                },
                StackFileRef {
                    base: "production_portainer_service_settings".into(),
                    path: "/srv/conf/settings.json".into(),
                },
            ]
        );
        for svc in &s.services {
            assert_eq!(
                svc.configs,
                [
                    FileRef {
                        source: "production_portainer_service_app".into(),
                        target: "/app/.env".into(),
                        uid: "0".into(),
                        gid: "0".into(),
                        mode: 0o444,
                    },
                    FileRef {
                        source: "production_portainer_service_settings".into(),
                        target: "/etc/portainer/settings.json".into(),
                        uid: "0".into(),
                        gid: "0".into(),
                        mode: 0o444,
                    },
                ]
            );
        }
        assert_eq!(
            s.configs,
            [
                "production_portainer_service_app",
                "production_portainer_service_settings"
            ]
        );
        // The services' hashes cover the references: added files, or a moved one, change them.
        assert_ne!(s.services[0].sha256, plain.services[0].sha256);
        let moved = with_files(&[
            ("stacks/portainer_service/app.env", "/app/other.env"),
            ("/srv/conf/settings.json", "/etc/portainer/settings.json"),
        ]);
        let m = render(&moved, "portainer_service", "production").unwrap();
        assert_ne!(m.services[0].sha256, s.services[0].sha256);
        // Deterministic.
        assert_eq!(render(&d, "portainer_service", "production").unwrap(), s);

        // The files' content folded in: the hash follows the content; a service without
        // files is left alone.
        let name = s.services[0].name.clone();
        assert!(s.mounts_files(&name) && !plain.mounts_files(&name));
        let folded = |content: &str| {
            let mut f = s.clone();
            f.fold_file_contents(&BTreeMap::from([(
                "production_portainer_service_app".to_string(),
                content.as_bytes().to_vec(),
            )]));
            f.services[0].sha256.clone()
        };
        assert_ne!(folded("A=1"), s.services[0].sha256);
        assert_ne!(folded("A=1"), folded("A=2"));
        assert_eq!(folded("A=1"), folded("A=1"));
        let mut untouched = plain.clone();
        untouched.fold_file_contents(&BTreeMap::from([(
            "production_portainer_service_app".to_string(),
            b"A=1".to_vec(),
        )]));
        assert_eq!(untouched, plain);
    }

    #[test]
    fn environment_file_conflicts_are_errors() {
        let same_base = with_files(&[("a/app.env", "/a/.env"), ("b/app.conf", "/b/.env")]);
        let e = render(&same_base, "portainer_service", "production").unwrap_err();
        assert!(matches!(e, StackError::EnvironmentFile { .. }), "{e}");
        assert!(
            e.to_string().contains("production_portainer_service_app"),
            "{e}"
        );
        let same_dest = with_files(&[("a.env", "/app/.env"), ("b.env", "/app/.env")]);
        let e = render(&same_dest, "portainer_service", "production").unwrap_err();
        assert!(e.to_string().contains("destination"), "{e}");
        let relative = with_files(&[("a.env", "app/.env")]);
        let e = render(&relative, "portainer_service", "production").unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
        // The compose file already mounts a secret there.
        let clash = with_files(&[("cert.pem", "/run/secrets/portainer_tls_cert")]);
        let e = render(&clash, "portainer_service", "production").unwrap_err();
        assert!(
            matches!(&e, StackError::Invalid { pointer, .. } if pointer == "/services/portainer/configs"),
            "{e:?}"
        );
        assert!(!e.hint().is_empty());
    }

    #[test]
    fn config_base_names_fit_swarm() {
        use std::path::Path;
        assert_eq!(config_base("p_s", Path::new("/x/prod.env")), "p_s_prod");
        assert_eq!(config_base("p_s", Path::new("configs/.env")), "p_s_env");
        assert_eq!(
            config_base("p_s", Path::new("my file+v2.conf")),
            "p_s_my_file_v2"
        );
        assert_eq!(config_base("p_s", Path::new("-x-.yml")), "p_s_x");
        assert_eq!(config_base("p_s", Path::new("/")), "p_s_file");
        assert_eq!(config_base("p_s", Path::new("ümlaut.env")), "p_s_mlaut");
        let long = config_base(
            "production_a_rather_long_stack_name",
            Path::new("settings_of_the_app.json"),
        );
        assert_eq!(long.len(), MAX_OBJECT_NAME - 13);
        assert!(long.starts_with("production_a_rather_long_stack_name_settings"));
        // Cut at a `_`: the name still ends alphanumeric.
        let cut = config_base(&"n".repeat(50), Path::new("x.env"));
        assert_eq!(cut, "n".repeat(50));
    }

    #[test]
    fn hash_follows_content() {
        let base =
            json!({"services": {"a": {"image": "busybox", "environment": {"G": "${G:-hello}"}}}});
        let h = |g: &str| {
            render_compose("ns", &base, &vars(&[("G", g)]), &BTreeMap::new())
                .unwrap()
                .services[0]
                .sha256
                .clone()
        };
        assert_eq!(h("x"), h("x"));
        assert_ne!(h("x"), h("y"));
        let default = render_compose("ns", &base, &BTreeMap::new(), &BTreeMap::new()).unwrap();
        assert_eq!(default.services[0].env[0].value, "hello");
    }

    #[test]
    fn inline_stack_with_every_supported_form() {
        let compose = json!({
            "version": "3.8",
            "x-common": {"anything": true},
            "services": {
                "web": {
                    "image": "nginx:${TAG}",
                    "entrypoint": "/bin/sh -c 'echo \"hi there\"'",
                    "command": ["a", "b"],
                    "environment": ["A=1", "TAG", "B=x=y"],
                    "labels": {"c": "d"},
                    "networks": {"front": {"aliases": ["www"]}, "ext": null},
                    "ports": ["8080:80", "53/udp", 9000, "7000-7001:8000-8001",
                              {"target": 443, "published": "8443", "mode": "host"}],
                    "secrets": [{"source": "s", "target": "cert.pem", "mode": "0400", "uid": 100}],
                    "configs": ["c1", {"source": "c1", "target": "/etc/app.conf"}],
                    "volumes": ["data:/data:ro", "/srv:/srv", "/anon",
                                {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": "64m"}},
                                {"type": "volume", "source": "data", "target": "/d2", "volume": {"nocopy": true}}],
                    "deploy": {
                        "mode": "replicated", "replicas": 3,
                        "labels": ["traefik.enable=false", "x=1"],
                        "endpoint_mode": "dnsrr",
                        "placement": {"constraints": ["node.labels.a == b"], "preferences": [{"spread": "node.labels.zone"}], "max_replicas_per_node": 2},
                        "restart_policy": {"condition": "on-failure", "delay": "1m30s", "max_attempts": 3, "window": "500ms"}
                    },
                    "hostname": "web", "user": "1000:1000", "working_dir": "/app",
                    "stop_grace_period": "2s", "read_only": true, "init": true
                },
                "agent": {"image": "agent", "deploy": {"mode": "global"}}
            },
            "networks": {"front": {"driver_opts": {"encrypted": ""}, "attachable": true}, "ext": {"external": true, "name": "traefik-public"}},
            "volumes": {"data": {"driver": "local", "labels": {"k": "v"}}},
            "secrets": {"s": {"external": true, "name": "real_s"}},
            "configs": {"c1": {"external": true}}
        });
        let traefik = BTreeMap::from([(
            "web".to_string(),
            vec![
                "traefik.enable=true".to_string(),
                "traefik.http.routers.w.rule=Host(`w`)".to_string(),
            ],
        )]);
        let s = render_compose("prod_demo", &compose, &vars(&[("TAG", "1.2")]), &traefik).unwrap();
        let w = s.service("web").unwrap();
        assert_eq!(w.name, "prod_demo_web");
        assert_eq!(w.image, "nginx:1.2");
        assert_eq!(
            w.entrypoint.as_ref().unwrap(),
            &["/bin/sh", "-c", "echo \"hi there\""]
        );
        let env: Vec<(&str, &str)> = w
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(env, [("A", "1"), ("B", "x=y"), ("TAG", "1.2")]);
        // Traefik labels come after deploy.labels: the later key wins.
        assert_eq!(w.labels["traefik.enable"], "true");
        assert_eq!(w.labels["x"], "1");
        assert_eq!(w.container_labels["c"], "d");
        assert_eq!(w.networks[0].name, "prod_demo_front");
        assert_eq!(w.networks[0].aliases, ["www"]);
        assert_eq!(w.networks[1].name, "traefik-public");
        let ports: Vec<(Option<u16>, u16, Protocol, PublishMode)> = w
            .ports
            .iter()
            .map(|p| (p.published, p.target, p.protocol, p.mode))
            .collect();
        assert_eq!(
            ports,
            [
                (Some(8080), 80, Protocol::Tcp, PublishMode::Ingress),
                (None, 53, Protocol::Udp, PublishMode::Ingress),
                (None, 9000, Protocol::Tcp, PublishMode::Ingress),
                (Some(7000), 8000, Protocol::Tcp, PublishMode::Ingress),
                (Some(7001), 8001, Protocol::Tcp, PublishMode::Ingress),
                (Some(8443), 443, Protocol::Tcp, PublishMode::Host),
            ]
        );
        assert_eq!(w.endpoint_mode, EndpointMode::Dnsrr);
        assert_eq!(
            w.secrets,
            [FileRef {
                source: "real_s".into(),
                target: "/run/secrets/cert.pem".into(),
                uid: "100".into(),
                gid: "0".into(),
                mode: 0o400
            }]
        );
        assert_eq!(w.configs[0].target, "/c1");
        assert_eq!(w.configs[1].target, "/etc/app.conf");
        assert_eq!(s.secrets, ["real_s"]);
        assert_eq!(s.configs, ["c1"]);
        assert_eq!(w.mounts[0].source.as_deref(), Some("prod_demo_data"));
        assert!(w.mounts[0].read_only);
        assert_eq!(w.mounts[0].volume_driver.as_deref(), Some("local"));
        assert_eq!(w.mounts[0].volume_labels[NAMESPACE_LABEL], "prod_demo");
        assert_eq!(w.mounts[1].kind, MountKind::Bind);
        assert_eq!(w.mounts[2].source, None);
        assert_eq!(w.mounts[3].kind, MountKind::Tmpfs);
        assert_eq!(w.mounts[3].tmpfs_size, Some(64 << 20));
        assert!(w.mounts[4].volume_nocopy);
        assert_eq!(w.mode, ServiceMode::Replicated { replicas: 3 });
        assert_eq!(w.preferences, ["node.labels.zone"]);
        assert_eq!(w.max_replicas_per_node, Some(2));
        assert_eq!(
            w.restart,
            Some(RestartPolicy {
                condition: Some(RestartCondition::OnFailure),
                delay_ns: Some(90_000_000_000),
                max_attempts: Some(3),
                window_ns: Some(500_000_000)
            })
        );
        assert_eq!(w.stop_grace_period_ns, Some(2_000_000_000));
        let a = s.service("agent").unwrap();
        assert_eq!(a.mode, ServiceMode::Global);
        assert_eq!(a.networks[0].name, "prod_demo_default");
        let nets: Vec<(&str, bool)> = s
            .networks
            .iter()
            .map(|n| (n.name.as_str(), n.external))
            .collect();
        assert_eq!(
            nets,
            [
                ("prod_demo_default", false),
                ("traefik-public", true),
                ("prod_demo_front", false)
            ]
        );
        assert!(s.networks[2].attachable);
    }

    #[test]
    fn unsupported_and_invalid_fields_name_their_pointer() {
        let cases = [
            (
                json!({"services": {"a": {"image": "i", "build": "."}}}),
                "/services/a/build",
            ),
            (
                json!({"services": {"a": {"build": "."}}}),
                "/services/a/build",
            ),
            (json!({"services": {"a": {"command": "x"}}}), "/services/a"),
            (
                json!({"services": {"a": {"image": "i", "deploy": {"resources": {}}}}}),
                "/services/a/deploy/resources",
            ),
            (
                json!({"services": {"a": {"image": "i", "deploy": {"mode": "global", "replicas": 2}}}}),
                "/services/a/deploy/replicas",
            ),
            (
                json!({"services": {"a": {"image": "i", "ports": ["127.0.0.1:80:80"]}}}),
                "/services/a/ports/0",
            ),
            (
                json!({"services": {"a": {"image": "i", "ports": [{"target": 80, "host_ip": "1.2.3.4"}]}}}),
                "/services/a/ports/0/host_ip",
            ),
            (
                json!({"services": {"a": {"image": "i", "volumes": ["./x:/x"]}}}),
                "/services/a/volumes/0",
            ),
            (
                json!({"services": {"a": {"image": "i", "volumes": ["undeclared:/x"]}}}),
                "/services/a/volumes/0",
            ),
            (
                json!({"services": {"a": {"image": "i", "networks": ["nope"]}}}),
                "/services/a/networks/0",
            ),
            (
                json!({"services": {"a": {"image": "i", "secrets": ["s"]}}}),
                "/services/a/secrets/0",
            ),
            (
                json!({"services": {"a": {"image": "i"}}, "secrets": {"s": {"file": "./s"}}}),
                "/secrets/s/file",
            ),
            (
                json!({"services": {"a": {"image": "i"}}, "secrets": {"s": {}}}),
                "/secrets/s",
            ),
            (
                json!({"services": {"a": {"image": "i"}}, "networks": {"n": {"ipam": {}}}}),
                "/networks/n/ipam",
            ),
            (
                json!({"services": {"a": {"image": "i"}}, "include": []}),
                "/include",
            ),
            (
                json!({"services": {"a": {"image": "i", "restart": "always"}}}),
                "/services/a/restart",
            ),
            (
                json!({"services": {"a": {"image": "i", "deploy": {"restart_policy": {"delay": "5 s"}}}}}),
                "/services/a/deploy/restart_policy/delay",
            ),
            (
                json!({"services": {"a": {"image": "i", "environment": {"T": "${MISSING}"}}}}),
                "/services/a/environment/T",
            ),
            (
                json!({"services": {"a": {"image": "i", "environment": ["UNSET_VAR"]}}}),
                "/services/a/environment/UNSET_VAR",
            ),
            (
                json!({"services": {"a": {"image": "i", "command": "echo 'x"}}}),
                "/services/a/command",
            ),
        ];
        for (compose, want) in cases {
            let (pointer, e) = err_pointer(compose.clone());
            assert_eq!(pointer, want, "{compose}: {e}");
            assert!(!e.hint().is_empty(), "{e}");
            assert!(e.to_string().starts_with(want), "{e}");
        }
    }

    #[test]
    fn traefik_labels_are_checked() {
        let compose = json!({"services": {"a": {"image": "i"}}});
        let bad = BTreeMap::from([("a".to_string(), vec!["no-equals".to_string()])]);
        assert!(matches!(
            render_compose("n", &compose, &BTreeMap::new(), &bad),
            Err(StackError::TraefikLabel { index: 0, .. })
        ));
        let other = BTreeMap::from([("b".to_string(), vec!["k=v".to_string()])]);
        assert!(matches!(
            render_compose("n", &compose, &BTreeMap::new(), &other),
            Err(StackError::TraefikService { .. })
        ));
    }

    #[test]
    fn words_and_durations() {
        assert_eq!(
            split_words("  a 'b c'  d\\ e \"f\\\"g\" ").unwrap(),
            ["a", "b c", "d e", "f\"g"]
        );
        assert_eq!(split_words("''").unwrap(), [""]);
        assert!(split_words("'x").is_err());
        assert_eq!(parse_duration("1h2m3s"), Some(3_723_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5d"), None);
    }
}
