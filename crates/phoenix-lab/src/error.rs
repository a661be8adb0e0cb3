//! Errors of the lab twin, each with a hint for the operator. No I/O.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid lab prefix {0:?}: expected 1 to 6 characters of [a-z0-9]")]
    InvalidPrefix(String),
    #[error("the lab needs root (network namespaces, /etc/netns, /run/phoenix-lab)")]
    NotRoot,
    #[error("a lab with prefix {prefix:?} already exists ({})", namespaces.join(", "))]
    AlreadyUp {
        prefix: String,
        namespaces: Vec<String>,
    },
    #[error("guest {guest} {nic}: {reason}")]
    Nic {
        guest: u32,
        nic: String,
        reason: String,
    },
    #[error("the model has no management bridge")]
    NoManagementBridge,
    #[error("no guest {guest:?} in the lab {prefix:?}")]
    UnknownGuest { prefix: String, guest: String },
    #[error("`{argv}` failed ({status}): {stderr}")]
    Command {
        argv: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the output of `{argv}`: {source}")]
    Parse {
        argv: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("lab service {name}: {reason}")]
    Service { name: String, reason: String },
    #[error("lab ingress: {0}")]
    Ingress(String),
    #[error("lab provisioning: {0}")]
    Provision(String),
    #[error("cannot write the lab state: {0}")]
    State(#[source] serde_json::Error),
}

impl LabError {
    /// What the operator can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            LabError::InvalidPrefix(_) => "use a short name such as `phx` or `t1a2b3`".into(),
            LabError::NotRoot => "run it as root, e.g. `sudo phoenix lab …`".into(),
            LabError::AlreadyUp { prefix, .. } => format!(
                "pass --recreate to rebuild it, or `phoenix lab down --prefix {prefix}` first"
            ),
            LabError::UnknownGuest { prefix, .. } => format!(
                "`phoenix lab status --prefix {prefix}` lists the guests (by id or name, or hv/wan)"
            ),
            LabError::Spawn { program, .. } => {
                format!("install {program} (iproute2, nftables, procps, dnsmasq, busybox)")
            }
            LabError::Ingress(_) => format!(
                "the ingress path needs nginx and Traefik (`scripts/peers.sh` in a checkout, \
                 {}/traefik, beside phoenix, or set {})",
                crate::peers::DATA_DIR,
                crate::ingress::TRAEFIK_ENV
            ),
            LabError::NoManagementBridge => {
                "the hypervisor file needs a management bridge (vmbr0)".into()
            }
            _ => return None,
        })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<phoenix_exec::docker::DockerError> for LabError {
    fn from(e: phoenix_exec::docker::DockerError) -> Self {
        LabError::Service {
            name: "swarm".into(),
            reason: e.0,
        }
    }
}
