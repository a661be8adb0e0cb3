//! `zfs` → [`Zfs`]: pools (layout, disks by id), datasets (their pool, properties, Proxmox
//! storage type and content), each bad value located; applied by phoenix-host. No I/O.

use crate::diag::{Code, Quote};
use crate::host::{RaidLevel, Zfs, ZfsDataset, ZfsPool};
use crate::raw;
use crate::source::Location;

use super::Builder;

/// Content types a Proxmox storage accepts.
const CONTENT_TYPES: &[&str] = &[
    "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
];

impl Builder<'_> {
    pub(super) fn zfs(&mut self, z: &raw::RawZfs, loc: &Location) -> Zfs {
        let mut pools: Vec<ZfsPool> = Vec::new();
        for (i, p) in z.pools.iter().enumerate() {
            let ploc = loc.child("pools").child(i);
            let name_ok = self.ident(&p.name, &ploc.child("name"));
            if name_ok && pools.iter().any(|o| o.name == p.name) {
                self.err(
                    Code::InvalidValue,
                    &ploc.child("name"),
                    format!("pool `{}` is defined twice", p.name.quoted()),
                    "give each pool its own name",
                );
                continue;
            }
            let level = match p.raid_level.as_str() {
                "single" => Some(RaidLevel::Single),
                "mirror" => Some(RaidLevel::Mirror),
                "raidz" | "raidz1" => Some(RaidLevel::Raidz1),
                "raidz2" => Some(RaidLevel::Raidz2),
                "raidz3" => Some(RaidLevel::Raidz3),
                other => {
                    self.err(
                        Code::InvalidValue,
                        &ploc.child("raid_level"),
                        format!("`{}` is not a pool layout", other.quoted()),
                        "use single, mirror, raidz1, raidz2 or raidz3",
                    );
                    None
                }
            };
            let mut disks_ok = true;
            for (j, d) in p.disks.iter().enumerate() {
                let by_id = d.strip_prefix("/dev/disk/by-id/").is_some_and(|rest| {
                    !rest.is_empty()
                        && !rest.starts_with('.')
                        && rest.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
                        })
                });
                if !by_id {
                    disks_ok = false;
                    self.err(Code::InvalidPath, &ploc.child("disks").child(j), format!("`{}` is not a /dev/disk/by-id path", d.quoted()), "name disks by id (`ls -l /dev/disk/by-id`): a /dev/sdX name can change between boots");
                }
            }
            if let Some(l) = level
                && p.disks.len() < l.min_disks()
            {
                disks_ok = false;
                self.err(
                    Code::InvalidValue,
                    &ploc.child("disks"),
                    format!(
                        "{} disks for a {:?} pool, which takes at least {}",
                        p.disks.len(),
                        l,
                        l.min_disks()
                    ),
                    "add disks or choose another raid_level",
                );
            }
            if let (true, Some(raid_level), true) = (name_ok, level, disks_ok) {
                pools.push(ZfsPool {
                    name: p.name.clone(),
                    raid_level,
                    disks: p.disks.clone(),
                    loc: ploc,
                });
            }
        }
        let mut datasets: Vec<ZfsDataset> = Vec::new();
        for (i, d) in z.datasets.iter().enumerate() {
            if let Some(ds) = self.dataset(d, &loc.child("datasets").child(i), z) {
                datasets.push(ds);
            }
        }
        Zfs {
            arc_max_gb: z.arc_max_gb,
            pools,
            datasets,
        }
    }

    fn dataset(
        &mut self,
        d: &raw::RawZfsDataset,
        loc: &Location,
        z: &raw::RawZfs,
    ) -> Option<ZfsDataset> {
        let mut ok = self.ident(&d.name, &loc.child("name"));
        if !z.pools.iter().any(|p| p.name == d.pool) {
            ok = false;
            self.err(
                Code::InvalidValue,
                &loc.child("pool"),
                format!("pool `{}` is not in `zfs.pools`", d.pool.quoted()),
                "name one of the pools defined in `zfs.pools`",
            );
        }
        let mut properties = Vec::new();
        for word in d
            .properties
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|w| !w.is_empty())
        {
            let parsed = word.split_once('=').filter(|(k, v)| {
                !k.is_empty()
                    && !v.is_empty()
                    && k.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'_' | b':' | b'.')
                    })
                    && v.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':')
                    })
            });
            match parsed {
                Some((k, v)) => properties.push((k.to_string(), v.to_string())),
                None => {
                    ok = false;
                    self.err(Code::InvalidValue, &loc.child("properties"), format!("`{}` is not a ZFS property `key=value`", word.quoted()), "write `key=value` pairs separated by commas, e.g. `recordsize=128K,compression=lz4`");
                }
            }
        }
        if let Some(t) = &d.proxmox_storage_type
            && !["zfspool", "dir"].contains(&t.as_str())
        {
            ok = false;
            self.err(
                Code::InvalidValue,
                &loc.child("proxmox_storage_type"),
                format!("`{}` is not a storage type phoenix registers", t.quoted()),
                "use zfspool or dir",
            );
        }
        let content: Vec<String> = d
            .proxmox_content_type
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        for c in &content {
            if !CONTENT_TYPES.contains(&c.as_str()) {
                ok = false;
                self.err(
                    Code::InvalidValue,
                    &loc.child("proxmox_content_type"),
                    format!("`{}` is not a Proxmox content type", c.quoted()),
                    "use images, rootdir, vztmpl, iso, backup, snippets or import",
                );
            }
        }
        ok.then(|| ZfsDataset {
            name: format!("{}/{}", d.pool, d.name),
            pool: d.pool.clone(),
            properties,
            storage_type: d.proxmox_storage_type.clone(),
            content,
            loc: loc.clone(),
        })
    }
}
