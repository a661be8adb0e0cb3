//! A guest's root disk size as a managed key: the size Proxmox shows on `rootfs` / `scsi0`
//! (`…,size=16G`) against the configured one. Smaller → a `resize` (a resize that failed when
//! the guest was created is retried this way); larger → a note, since Proxmox only grows
//! disks. Pure, no I/O. Relied on: `pct(1)` / `qm(1)` `resize`, PVE's disk size format
//! (`<number>[KMGT]`, bytes without a unit).

use phoenix_render::guestparams::ApiCall;

use crate::action::KeyChange;
use crate::observed::ObservedGuest;

const GIB: u64 = 1 << 30;

/// Bytes of a PVE disk size (`16G`, `512M`, `1T`, `10737418240`).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return None,
    };
    let value: f64 = num.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * (1u64 << shift) as f64) as u64)
}

/// The size of the disk value `value` (`local-lvm:vm-101-disk-0,size=16G`); a new volume's
/// `STORAGE:N` form (N GiB, as written by a create call) counts as N GiB.
pub fn disk_size(value: &str) -> Option<u64> {
    if let Some(size) = value
        .split(',')
        .find_map(|p| p.trim().strip_prefix("size="))
    {
        return parse_size(size);
    }
    let volume = value.split(',').next()?;
    let (_, n) = volume.split_once(':')?;
    n.parse::<u64>().ok().map(|g| g * GIB)
}

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(GIB) {
        format!("{}G", bytes / GIB)
    } else {
        format!("{}M", bytes >> 20)
    }
}

/// What the observed disk calls for, given the configured `grow` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskDecision {
    /// Same size, or not known on the target (nothing to compare).
    Keep,
    /// Smaller than configured: grow it.
    Grow(KeyChange),
    /// Larger than configured: Proxmox cannot shrink it.
    Larger {
        disk: String,
        have: String,
        want: String,
    },
}

/// Compare `observed`'s disk with the size `grow` sets.
pub fn decide(grow: &ApiCall, observed: &ObservedGuest) -> DiskDecision {
    let (Some(disk), Some(want)) = (grow.params.get("disk"), grow.params.get("size")) else {
        return DiskDecision::Keep;
    };
    if observed.template {
        return DiskDecision::Keep;
    }
    // `size=0`: the node does not know the volume's size (an import it could not measure).
    let (Some(have), Some(want_bytes)) = (
        observed
            .config
            .get(disk)
            .and_then(|v| disk_size(v))
            .filter(|b| *b > 0),
        parse_size(want),
    ) else {
        return DiskDecision::Keep;
    };
    match have.cmp(&want_bytes) {
        std::cmp::Ordering::Equal => DiskDecision::Keep,
        std::cmp::Ordering::Less => DiskDecision::Grow(KeyChange {
            key: format!("{disk}.size"),
            from: Some(human(have)),
            to: Some(want.clone()),
        }),
        std::cmp::Ordering::Greater => DiskDecision::Larger {
            disk: disk.clone(),
            have: human(have),
            want: want.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_render::guestparams::GuestEndpoint;

    fn grow(size: &str) -> ApiCall {
        ApiCall {
            endpoint: GuestEndpoint::LxcResize,
            vmid: phoenix_model::model::GuestId(101),
            params: [("disk", "rootfs"), ("size", size)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn guest(rootfs: &str) -> ObservedGuest {
        let mut g = ObservedGuest {
            id: phoenix_model::model::GuestId(101),
            kind: phoenix_model::model::GuestKind::Lxc,
            status: crate::observed::GuestStatus::Running,
            config: Default::default(),
            raw_lxc: Vec::new(),
            template: false,
            snapshots: Vec::new(),
        };
        if !rootfs.is_empty() {
            g.config.insert("rootfs".into(), rootfs.into());
        }
        g
    }

    #[test]
    fn sizes_parse_as_proxmox_prints_them() {
        assert_eq!(parse_size("16G"), Some(16 * GIB));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1T"), Some(1024 * GIB));
        assert_eq!(parse_size("1.5G"), Some(GIB + GIB / 2));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("G"), None);
        assert_eq!(disk_size("local-lvm:vm-101-disk-0,size=8G"), Some(8 * GIB));
        assert_eq!(disk_size("quickOS-lxc-disks:16"), Some(16 * GIB));
        assert_eq!(disk_size("local-lvm:vm-101-disk-0"), None);
    }

    #[test]
    fn a_smaller_disk_grows_a_larger_one_is_said() {
        assert_eq!(
            decide(&grow("16G"), &guest("local:subvol-101-disk-0,size=8G")),
            DiskDecision::Grow(KeyChange {
                key: "rootfs.size".into(),
                from: Some("8G".into()),
                to: Some("16G".into()),
            })
        );
        assert_eq!(
            decide(&grow("16G"), &guest("local:subvol-101-disk-0,size=16G")),
            DiskDecision::Keep
        );
        assert_eq!(
            decide(&grow("16G"), &guest("local:subvol-101-disk-0,size=32G")),
            DiskDecision::Larger {
                disk: "rootfs".into(),
                have: "32G".into(),
                want: "16G".into()
            }
        );
        // Unknown size on the target: nothing to compare.
        assert_eq!(
            decide(&grow("16G"), &guest("local:subvol-101-disk-0")),
            DiskDecision::Keep
        );
        assert_eq!(
            decide(&grow("16G"), &guest("local:101/vm-101-disk-0.raw,size=0")),
            DiskDecision::Keep
        );
        assert_eq!(decide(&grow("16G"), &guest("")), DiskDecision::Keep);
    }
}
