//! `phoenix_stacks_config.json` (+ `stacks/<name>/phoenix.json`) and `certificate-manifest.json`.
//! No I/O.

use schemars::JsonSchema;
use serde::Deserialize;

use super::common::{GuestId, RawRule, Secret};
use super::guests::indexmap_like::Map;

/// The stacks file: `{"docker_stacks": {"<name>": {…}}}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawStacksFile {
    /// Editor hint; ignored.
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
    /// Stacks by name; the compose file is `stacks/<name>/docker-compose.yml`.
    #[serde(default)]
    pub docker_stacks: Map<RawStack>,
}

/// One stack.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawStack {
    /// Human-readable description of the stack.
    pub description: Option<String>,
    /// Ignored by the bash system; phoenix reads `stacks/<name>/docker-compose.yml`.
    pub compose_file_path: Option<String>,
    /// Public name served through the Nginx gateway.
    pub nginx_proxy: Option<RawNginxProxy>,
    /// Environments; deployed as `<env>_<stack>`.
    #[serde(default)]
    pub environments: Map<RawStackEnvironment>,
}

/// `nginx_proxy`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawNginxProxy {
    /// Host name the Nginx gateway forwards to Traefik for this stack
    /// (`portainer.internal.thinkheads.ai`).
    pub hostname: String,
}

/// `environments.<env>`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawStackEnvironment {
    /// Variables substituted into the compose file.
    #[serde(default)]
    pub variables: Vec<RawStackVariable>,
    /// Files copied into containers.
    #[serde(default)]
    pub files: Vec<RawStackFile>,
    /// Per service: Traefik labels.
    #[serde(default)]
    pub services: Map<RawStackService>,
    /// Firewall rules the stack needs on its node.
    #[serde(default)]
    pub firewall_rules: Vec<RawRule>,
}

/// A variable.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RawStackVariable {
    /// Variable name.
    pub name: String,
    /// Value; may be a secret reference.
    pub value: Secret,
}

/// A file placed into a container.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RawStackFile {
    /// Path of the file placed into the stack's containers (as a Swarm config); a relative
    /// path is relative to the configuration directory.
    pub source: String,
    /// Destination path inside the container (`/app/.env`).
    pub destination_in_container: String,
}

/// `services.<svc>`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RawStackService {
    /// Docker labels for Traefik's Swarm provider.
    #[serde(default)]
    pub traefik_labels: Vec<String>,
}

/// One certificate of `certificate-manifest.json`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RawCertificate {
    /// Subject common name; also a SAN when it is a DNS name.
    pub common_name: String,
    /// Subject alternative names: DNS names (`*.domain` allowed) and IP addresses.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Guest the certificate is for. Older manifests omit it; phoenix then reads it from the
    /// path (`…/lxc-persistent-data/<id>/…` or `…/vm-persistent-data/<id>/…`).
    pub guest_id: Option<GuestId>,
    /// `lxc` or `vm`.
    pub guest_type: Option<String>,
    /// Certificate path (inside the guest's persistent-data mount on the host).
    pub cert_path: String,
    /// Private key path (inside the guest's persistent-data mount on the host).
    pub key_path: String,
    /// `user:group` owning the files.
    pub owner: Option<String>,
    /// Append the CA chain to the certificate file.
    pub include_ca: Option<bool>,
    /// `server` (default) or `client`.
    pub cert_type: Option<String>,
    /// Bash shell string run after renewal. Never executed unless the operator opts in; the
    /// plan shows it verbatim.
    pub post_renewal_command: Option<String>,
    /// Octal mode of the key file (`"640"`); default 600, or 640 when a group other than
    /// root must read it.
    pub permissions: Option<String>,
    /// New: lifetime in hours (default 24).
    pub lifetime_hours: Option<u32>,
}
