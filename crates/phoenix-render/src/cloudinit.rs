//! Cloud-init vendor data for VMs: a snippet per VM (`phoenix-<vmid>.yaml` on a storage with
//! `snippets` content, referenced by `cicustom: vendor=…`) that installs and starts
//! qemu-guest-agent and what provisioning needs. Proxmox still generates the user and network
//! data (`ciuser`, `ipconfigN`, `nameserver`, `searchdomain`). No I/O.
//!
//! Relied on: <https://pve.proxmox.com/wiki/Cloud-Init_Support> (custom cloud-init
//! configuration, `cicustom`), `qm(1)`.

use phoenix_model::model::{DesiredState, Guest, GuestId, GuestKind};

use crate::RenderedFile;

/// A storage with `snippets` content, and its directory on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetStore {
    /// Storage id (`local`).
    pub storage: String,
    /// The storage's `path` (`/var/lib/vz`); snippets live in `PATH/snippets/`.
    pub path: String,
}

/// Packages every VM gets: the agent phoenix reaches it through, and what its provision steps
/// use before any feature's own packages.
pub const VENDOR_PACKAGES: [&str; 3] = ["qemu-guest-agent", "ca-certificates", "curl"];

/// The snippet's file name for VM `id`.
pub fn snippet_name(id: GuestId) -> String {
    format!("phoenix-{id}.yaml")
}

/// `cicustom` for VM `id`: its vendor data from `store`.
pub fn cicustom(store: &SnippetStore, id: GuestId) -> String {
    format!("vendor={}:snippets/{}", store.storage, snippet_name(id))
}

/// The snippet's path on the node.
pub fn snippet_path(store: &SnippetStore, id: GuestId) -> String {
    format!(
        "{}/snippets/{}",
        store.path.trim_end_matches('/'),
        snippet_name(id)
    )
}

/// The vendor data of VM `g`: packages, then the agent enabled and started. Merged by
/// cloud-init with the user data Proxmox generates.
pub fn vendor_data(g: &Guest) -> String {
    let mut s = String::from("#cloud-config\n");
    s.push_str(&format!(
        "# phoenix: vendor data of VM {} ({}); Proxmox generates the user and network data\n",
        g.id, g.name
    ));
    s.push_str("package_update: true\npackages:\n");
    for p in VENDOR_PACKAGES {
        s.push_str(&format!("  - {p}\n"));
    }
    s.push_str("runcmd:\n  - [systemctl, enable, --now, qemu-guest-agent]\n");
    s
}

/// Every VM's snippet, as host files under `store`'s directory.
pub fn vendor_files(d: &DesiredState, store: &SnippetStore) -> Vec<RenderedFile> {
    d.guests
        .values()
        .filter(|g| g.kind == GuestKind::Vm)
        .map(|g| RenderedFile::host(snippet_path(store, g.id), vendor_data(g)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn store() -> SnippetStore {
        SnippetStore {
            storage: "local".into(),
            path: "/var/lib/vz/".into(),
        }
    }

    #[test]
    fn names_and_reference() {
        let id = GuestId(1001);
        assert_eq!(
            cicustom(&store(), id),
            "vendor=local:snippets/phoenix-1001.yaml"
        );
        assert_eq!(
            snippet_path(&store(), id),
            "/var/lib/vz/snippets/phoenix-1001.yaml"
        );
    }

    #[test]
    fn homelab_vendor_data() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
        let d = phoenix_model::validate_dir(&dir).desired.unwrap();
        let files = vendor_files(&d, &store());
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/var/lib/vz/snippets/phoenix-1001.yaml",
                "/var/lib/vz/snippets/phoenix-1002.yaml",
                "/var/lib/vz/snippets/phoenix-9000.yaml"
            ]
        );
        let text = &files[0].content;
        assert!(text.starts_with("#cloud-config\n"));
        assert!(text.contains("  - qemu-guest-agent\n"));
        assert!(text.contains("[systemctl, enable, --now, qemu-guest-agent]"));
        assert_eq!(files[0].mode, 0o644);
    }
}
