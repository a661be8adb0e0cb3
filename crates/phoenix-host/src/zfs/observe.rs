//! What ZFS has now, read with `zpool`/`zfs`/`lsblk`/`blkid` as argv vectors through the
//! [`HostShell`]: pools, datasets and the desired properties (exact values, `-p`), and for
//! each disk of a pool still to be made what it holds. Read-only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use phoenix_exec::shell::{HostShell, ShellError};
use phoenix_model::host::Zfs;

/// Deadline of one observing command.
const DEADLINE: Duration = Duration::from_secs(30);

/// What a disk holds, as `lsblk` and `blkid -p` see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskObserved {
    /// `lsblk` knows the disk.
    pub found: bool,
    /// Partitions (`lsblk` children of type `part`).
    pub partitions: Vec<String>,
    /// A signature on the whole disk (`blkid -p` `TYPE`, or `lsblk` `FSTYPE`): `ext4`,
    /// `zfs_member`…
    pub signature: Option<String>,
    /// A partition table (`blkid -p` `PTTYPE`).
    pub partition_table: Option<String>,
    /// The pool named in a `zfs_member` label (`blkid` `LABEL`).
    pub pool_label: Option<String>,
    /// Mount points on the disk or its partitions.
    pub mounted: Vec<String>,
}

impl DiskObserved {
    /// What the disk holds, in words; `None` when it is blank.
    pub fn holds(&self) -> Option<String> {
        let mut what = Vec::new();
        if !self.partitions.is_empty() {
            what.push(format!("partitions {}", self.partitions.join(", ")));
        }
        if let Some(t) = &self.partition_table
            && self.partitions.is_empty()
        {
            what.push(format!("a {t} partition table"));
        }
        match (&self.signature, &self.pool_label) {
            (Some(s), Some(pool)) if s == "zfs_member" => {
                what.push(format!("a label of the ZFS pool {pool}"));
            }
            (Some(s), _) => what.push(format!("a {s} signature")),
            _ => {}
        }
        (!what.is_empty()).then(|| what.join(" and "))
    }
}

/// ZFS as observed.
#[derive(Debug, Clone, Default)]
pub struct ZfsObserved {
    /// Imported pools.
    pub pools: BTreeSet<String>,
    /// File systems (`pool/name`).
    pub datasets: BTreeSet<String>,
    /// `(dataset, property)` → value as `zfs get -p` prints it.
    pub properties: BTreeMap<(String, String), String>,
    /// Disks of the pools not imported, by their configured path.
    pub disks: BTreeMap<String, DiskObserved>,
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_string()).collect()
}

fn lines(shell: &dyn HostShell, words: &[&str]) -> Result<Option<Vec<String>>, ShellError> {
    let out = shell.run(&argv(words), DEADLINE)?;
    if out.status != 0 {
        return Ok(None);
    }
    Ok(Some(
        out.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

/// Read what `zfs` needs. `zpool` and `zfs` must exist (the caller checks). `Ok(Err(why))`
/// when ZFS cannot be used on the host.
pub fn observe(
    shell: &dyn HostShell,
    zfs: &Zfs,
) -> Result<Result<ZfsObserved, String>, ShellError> {
    let mut observed = ZfsObserved::default();
    let out = shell.run(&argv(&["zpool", "list", "-H", "-o", "name"]), DEADLINE)?;
    if out.status != 0 {
        // Installed but not usable (the module not loaded): said in the plan, not an error.
        return Ok(Err(format!(
            "`zpool list` failed: {}",
            out.stderr.trim().lines().next().unwrap_or("no message")
        )));
    }
    let pools: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    observed.pools = pools.into_iter().collect();
    if let Some(names) = lines(
        shell,
        &["zfs", "list", "-H", "-o", "name", "-t", "filesystem"],
    )? {
        observed.datasets = names.into_iter().collect();
    }
    let present: Vec<&str> = zfs
        .datasets
        .iter()
        .filter(|d| observed.datasets.contains(&d.name))
        .map(|d| d.name.as_str())
        .collect();
    let keys: BTreeSet<&str> = zfs
        .datasets
        .iter()
        .flat_map(|d| d.properties.iter().map(|(k, _)| k.as_str()))
        .collect();
    if !present.is_empty() && !keys.is_empty() {
        let keys = keys.into_iter().collect::<Vec<_>>().join(",");
        let mut words = vec!["zfs", "get", "-H", "-p", "-o", "name,property,value", &keys];
        words.extend(present);
        for line in lines(shell, &words)?.unwrap_or_default() {
            let mut f = line.split('\t');
            if let (Some(name), Some(prop), Some(value)) = (f.next(), f.next(), f.next()) {
                observed
                    .properties
                    .insert((name.to_string(), prop.to_string()), value.to_string());
            }
        }
    }
    for pool in zfs
        .pools
        .iter()
        .filter(|p| !observed.pools.contains(&p.name))
    {
        for disk in &pool.disks {
            observed
                .disks
                .insert(disk.clone(), disk_state(shell, disk)?);
        }
    }
    Ok(Ok(observed))
}

/// `lsblk --json` (partitions, mounts) and `blkid -p` (signatures, probed on the device itself).
fn disk_state(shell: &dyn HostShell, disk: &str) -> Result<DiskObserved, ShellError> {
    let mut state = DiskObserved::default();
    let out = shell.run(
        &argv(&[
            "lsblk",
            "--json",
            "--paths",
            "--output",
            "NAME,TYPE,FSTYPE,MOUNTPOINT",
            disk,
        ]),
        DEADLINE,
    )?;
    if out.status != 0 {
        return Ok(state);
    }
    let tree: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    let Some(dev) = tree.get("blockdevices").and_then(|b| b.get(0)) else {
        return Ok(state);
    };
    state.found = true;
    let text = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    state.signature = text(dev, "fstype");
    state.mounted.extend(text(dev, "mountpoint"));
    for child in dev
        .get("children")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
    {
        state.partitions.extend(text(child, "name"));
        state.mounted.extend(text(child, "mountpoint"));
    }
    // blkid exits 2 when it finds nothing.
    let out = shell.run(&argv(&["blkid", "-p", "-o", "export", disk]), DEADLINE)?;
    if out.status == 0 {
        for line in out.stdout.lines() {
            match line.split_once('=') {
                Some(("TYPE", v)) => state.signature = Some(v.to_string()),
                Some(("PTTYPE", v)) => state.partition_table = Some(v.to_string()),
                Some(("LABEL", v)) => state.pool_label = Some(v.to_string()),
                _ => {}
            }
        }
    }
    if state.signature.as_deref() != Some("zfs_member") {
        state.pool_label = None;
    }
    Ok(state)
}
