//! # phoenix-render
//!
//! Renderers turn the desired state into the exact text of the files phoenix manages: each
//! returns [`RenderedFile`]s (a target, a path, content, owner and mode). Applying a file
//! (stage, diff, atomic swap) is the backends' job. No I/O: values in, text out.

pub mod cloudinit;
pub mod compose;
pub mod dnsmasq;
pub mod dockerd;
pub mod firewall;
pub mod graph;
pub mod guestparams;
pub mod hostnet;
pub mod hostsetup;
pub mod nginx;
pub mod propstring;
pub mod stack;
pub mod traefik;

use phoenix_model::model::{DesiredState, GuestId};
use serde::{Deserialize, Serialize};

/// Where a rendered file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum FileTarget {
    /// The hypervisor itself.
    Host,
    /// Inside a guest's filesystem.
    Guest(GuestId),
}

/// The text of one managed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedFile {
    pub target: FileTarget,
    /// Absolute path on the target.
    pub path: String,
    pub content: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
}

impl RenderedFile {
    /// A root-owned 0644 file on the host.
    pub fn host(path: impl Into<String>, content: String) -> Self {
        RenderedFile {
            target: FileTarget::Host,
            path: path.into(),
            content,
            owner: "root".into(),
            group: "root".into(),
            mode: 0o644,
        }
    }
}

/// Settings that are not part of the configuration files but of the target.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Proxmox node name (for `/etc/pve/nodes/NODE/host.fw`).
    pub node: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { node: "pve".into() }
    }
}

/// Every file phoenix manages, in a stable order: host network, NAT, DNS, firewall files,
/// then the ingress files inside the proxy and gateway guests. A configuration without an
/// internal proxy simply has no ingress files.
pub fn render_all(
    d: &DesiredState,
    opts: &RenderOptions,
) -> Result<Vec<RenderedFile>, traefik::ingress::IngressError> {
    let mut out = render_host_files(d, opts);
    out.extend(firewall::firewall_files(d, opts));
    match traefik::files(d, traefik::Api::Off) {
        Ok(files) => out.extend(files),
        Err(traefik::ingress::IngressError::NoProxy) => return Ok(out),
        Err(e) => return Err(e),
    }
    out.extend(nginx::gateway(d)?);
    Ok(out)
}

/// Every file phoenix renders for the host's network and DNS, in a stable order.
pub fn render_host_files(d: &DesiredState, _opts: &RenderOptions) -> Vec<RenderedFile> {
    let mut out = vec![
        hostnet::interfaces(d),
        hostnet::nat_ruleset(d),
        hostnet::sysctl(d),
    ];
    if d.dns.enabled {
        out.push(dnsmasq::config(d));
    }
    out
}
