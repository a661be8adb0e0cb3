//! VM vendor data on the node: the storage that holds the snippets (from the observed
//! storages), every VM's snippet file, and a note when no observed storage can hold them.
//! Pure.

use phoenix_model::model::{DesiredState, GuestKind};
use phoenix_render::RenderedFile;
use phoenix_render::cloudinit;

use crate::observed::ObservedState;

/// Every VM's vendor snippet, on the observed snippets storage (none when there is none).
pub fn snippet_files(d: &DesiredState, observed: &ObservedState) -> Vec<RenderedFile> {
    observed
        .snippet_store()
        .map(|store| cloudinit::vendor_files(d, &store))
        .unwrap_or_default()
}

/// Why the VMs get no vendor data, when they do not.
pub fn note(d: &DesiredState, observed: &ObservedState) -> Option<String> {
    if !d.guests.values().any(|g| g.kind == GuestKind::Vm) || observed.snippet_store().is_some() {
        return None;
    }
    if observed.storages.is_empty() {
        // Not observed (an offline plan, the lab): nothing to say about the node's storages.
        return None;
    }
    Some(
        "VM vendor data (qemu-guest-agent through cloud-init) skipped: no storage on the node has `snippets` content and a directory; hint: add it to a directory storage, e.g. `pvesm set local --content iso,vztmpl,backup,import,snippets`".into(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::observed::ObservedStorage;

    fn homelab() -> DesiredState {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
        phoenix_model::validate_dir(&dir).desired.unwrap()
    }

    fn storage(name: &str, content: &str, path: Option<&str>) -> ObservedStorage {
        ObservedStorage {
            name: name.into(),
            content: content.split(',').map(str::to_string).collect(),
            path: path.map(str::to_string),
        }
    }

    #[test]
    fn local_is_preferred_and_no_snippets_storage_is_said() {
        let d = homelab();
        let mut o = ObservedState::default();
        assert!(note(&d, &o).is_none(), "storages not observed: no note");
        o.storages = vec![storage("local", "iso,vztmpl", Some("/var/lib/vz"))];
        assert!(snippet_files(&d, &o).is_empty());
        let n = note(&d, &o).unwrap();
        assert!(n.contains("no storage on the node has `snippets`"), "{n}");
        o.storages = vec![
            storage("aaa", "snippets", Some("/srv/aaa")),
            storage("local", "iso,snippets", Some("/var/lib/vz")),
            storage("lvm", "images,snippets", None),
        ];
        assert!(note(&d, &o).is_none());
        let files = snippet_files(&d, &o);
        assert_eq!(files.len(), 3);
        assert!(files[0].path.starts_with("/var/lib/vz/snippets/phoenix-"));
    }
}
