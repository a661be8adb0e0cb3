//! What exists on a target, as a value. Backends fill it (the lab, the PVE API and host shell);
//! `phoenix plan --observed FILE` reads it from JSON; the default is an empty host. No I/O.
//!
//! JSON format (every field optional; unknown fields are errors so typos are caught):
//! ```json
//! {
//!   "bridges": [{"name": "vmbr100", "addresses": ["172.16.100.1/24"]}],
//!   "files": [{"target": {"kind": "host"}, "path": "/etc/network/interfaces",
//!              "sha256": "…", "content": "…", "owner": "root", "group": "root", "mode": 420}],
//!   "guests": [{"id": 103, "kind": "lxc", "status": "running",
//!               "config": {"hostname": "Step-CA", "net0": "name=eth0,bridge=vmbr100,…"},
//!               "raw_lxc": ["lxc.net.0.type: macvlan"]}],
//!   "certificates": [{"guest": 101, "path": "/etc/nginx/ssl/gw.crt", "serial": "0a…",
//!                     "common_name": "nginx.internal.example",
//!                     "sans": ["DNS:nginx.internal.example", "IP:172.16.100.11"],
//!                     "not_before": 0, "not_after": 86400, "issuer_key_id": "…",
//!                     "key_type": "ecdsa-p256", "usage": "server", "key": "matches"}]
//! }
//! ```
//! `content` may be omitted when only the hash is known; `sha256` may be omitted when the
//! content is given.
//!
//! A certificate is the leaf at `path` inside `guest`. `issuer_key_id` (alias
//! `issuer_fingerprint`) is the leaf's authority key identifier in hex, i.e. the subject key
//! id of the intermediate that signed it. A fact that is not reported (`common_name`,
//! `key_type`, `usage`) cannot be confirmed, so the certificate is renewed; only `key` (which
//! needs the private key file) is skipped when absent.

use std::collections::BTreeMap;

use ipnet::IpNet;
use phoenix_model::model::{GuestId, GuestKind};
use phoenix_render::FileTarget;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedState {
    #[serde(default)]
    pub bridges: Vec<ObservedBridge>,
    #[serde(default)]
    pub files: Vec<ObservedFile>,
    #[serde(default)]
    pub guests: Vec<ObservedGuest>,
    #[serde(default)]
    pub certificates: Vec<ObservedCertificate>,
    /// Guests whose inside was checked: the provision steps found done (by
    /// [`crate::provision::ProvisionStep::done_key`]). A guest not listed is unchecked: its
    /// steps are planned and the executor checks each one first.
    #[serde(default)]
    pub provisioned: Vec<ObservedProvision>,
    /// The Docker Swarm through its engines ([`crate::swarm::SwarmObserved`]); `None`: not
    /// observed, and then no Swarm action is planned (`phoenix swarm status` observes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<crate::swarm::SwarmObserved>,
    /// The node's storages (id, content types, directory); empty: not observed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storages: Vec<ObservedStorage>,
}

/// One storage of the node, as `storage.cfg` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedStorage {
    pub name: String,
    /// Content types (`images`, `iso`, `snippets`, `import`, …).
    #[serde(default)]
    pub content: Vec<String>,
    /// The directory of a file-based storage.
    #[serde(default)]
    pub path: Option<String>,
}

impl ObservedStorage {
    pub fn holds(&self, content: &str) -> bool {
        self.content.iter().any(|c| c == content)
    }
}

/// The provision steps found done inside one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedProvision {
    pub guest: GuestId,
    #[serde(default)]
    pub done: Vec<String>,
}

impl ObservedState {
    pub fn guest(&self, id: GuestId) -> Option<&ObservedGuest> {
        self.guests.iter().find(|g| g.id == id)
    }

    /// The steps found done inside `id`, when its inside was checked.
    pub fn provisioned(&self, id: GuestId) -> Option<&ObservedProvision> {
        self.provisioned.iter().find(|p| p.guest == id)
    }

    /// Where VM vendor snippets go: `local` when it holds `snippets`, else the first storage
    /// (by id) that does and has a directory.
    pub fn snippet_store(&self) -> Option<phoenix_render::cloudinit::SnippetStore> {
        let mut found: Vec<&ObservedStorage> = self
            .storages
            .iter()
            .filter(|s| s.holds("snippets") && s.path.is_some())
            .collect();
        found.sort_by_key(|s| (s.name != "local", s.name.clone()));
        found
            .first()
            .map(|s| phoenix_render::cloudinit::SnippetStore {
                storage: s.name.clone(),
                path: s.path.clone().unwrap_or_default(),
            })
    }

    pub fn file(&self, target: FileTarget, path: &str) -> Option<&ObservedFile> {
        self.files
            .iter()
            .find(|f| f.target == target && f.path == path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedBridge {
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedFile {
    pub target: FileTarget,
    pub path: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub mode: Option<u32>,
}

impl ObservedFile {
    /// The content hash, computed from the content when only that is known.
    pub fn hash(&self) -> Option<String> {
        self.sha256
            .clone()
            .or_else(|| self.content.as_deref().map(sha256_hex))
    }
}

/// Lower-case hex SHA-256 of a text.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestStatus {
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedGuest {
    pub id: GuestId,
    pub kind: GuestKind,
    pub status: GuestStatus,
    /// Proxmox config keys as the API returns them (`net0`, `memory`, `startup`, …).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Raw `lxc.*` lines of `/etc/pve/lxc/ID.conf`.
    #[serde(default)]
    pub raw_lxc: Vec<String>,
    /// A template (never started).
    #[serde(default)]
    pub template: bool,
    /// The names of its snapshots (`current` excluded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedCertificate {
    pub guest: GuestId,
    /// The certificate file inside the guest.
    pub path: String,
    pub serial: String,
    #[serde(default)]
    pub common_name: Option<String>,
    /// `DNS:name`, `IP:address`, or bare (an address if it parses as one).
    #[serde(default)]
    pub sans: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Hex authority key identifier (colons allowed).
    #[serde(default, alias = "issuer_fingerprint")]
    pub issuer_key_id: Option<String>,
    /// `ecdsa-p256`, or the algorithm's name.
    #[serde(default)]
    pub key_type: Option<String>,
    /// `server` or `client` (from the EKU extension).
    #[serde(default)]
    pub usage: Option<String>,
    /// What the key file next to it holds; absent = not observed.
    #[serde(default)]
    pub key: Option<ObservedKey>,
}

/// The key file next to an observed certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservedKey {
    Matches,
    Mismatch,
    Missing,
}

impl ObservedState {
    /// The certificate observed at `path` in `guest`.
    pub fn certificate(&self, guest: GuestId, path: &str) -> Option<&ObservedCertificate> {
        self.certificates
            .iter()
            .find(|c| c.guest == guest && c.path == path)
    }
}
