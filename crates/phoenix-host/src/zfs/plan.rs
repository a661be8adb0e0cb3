//! The ZFS part of the setup plan: the ARC limit (live and in `/etc/modprobe.d/zfs.conf`),
//! pools (the one destructive step, refused on a disk that holds something unless
//! `--wipe-disks`), datasets created with their properties or changed in place with
//! `zfs set`. Pure.

use phoenix_exec::shell::HostFile;
use phoenix_model::host::{RaidLevel, Zfs, ZfsDataset, ZfsPool};

use crate::observe::{HostObserved, Scope};
use crate::plan::{PlanInputs, Step, root_file, scratch_reason, write_step};
use crate::zfs::observe::ZfsObserved;

/// The live ARC limit (bytes).
pub const ARC_PARAMETER: &str = "/sys/module/zfs/parameters/zfs_arc_max";
/// Where the ARC limit persists (read when the module loads).
pub const MODPROBE_PATH: &str = "/etc/modprobe.d/zfs.conf";

/// Properties whose values are sizes: compared in bytes (`zfs get -p` prints bytes).
const SIZE_PROPERTIES: &[&str] = &[
    "quota",
    "refquota",
    "reservation",
    "refreservation",
    "recordsize",
    "volsize",
    "volblocksize",
    "special_small_blocks",
];

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_string()).collect()
}

/// `128K`, `1.4T`, `none` → bytes, the way `zfs` reads them (binary units, truncated).
pub fn size_bytes(text: &str) -> Option<u64> {
    if text == "none" {
        return Some(0);
    }
    let t = text.trim_end_matches("iB").trim_end_matches(['B', 'b']);
    let (num, shift) = match t.chars().last()?.to_ascii_uppercase() {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        'P' => (&t[..t.len() - 1], 50),
        'E' => (&t[..t.len() - 1], 60),
        c if c.is_ascii_digit() => (t, 0),
        _ => return None,
    };
    if num.contains('.') {
        let v: f64 = num.parse().ok()?;
        let bytes = v * f64::from(1u32 << 10).powi(shift / 10);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64);
    }
    num.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// Whether the observed `have` is the configured `want` for `property`.
fn same_value(property: &str, have: &str, want: &str) -> bool {
    if SIZE_PROPERTIES.contains(&property) {
        return size_bytes(have).is_some() && size_bytes(have) == size_bytes(want);
    }
    have == want
}

/// `/etc/modprobe.d/zfs.conf` with `zfs_arc_max` set to `bytes`; other options kept.
pub fn modprobe_conf(have: Option<&str>, bytes: u64) -> String {
    let mut out = String::new();
    for line in have.unwrap_or("").lines() {
        let mut w: Vec<&str> = line.split_whitespace().collect();
        if w.len() >= 2 && w[0] == "options" && w[1] == "zfs" {
            w.retain(|x| !x.starts_with("zfs_arc_max="));
            if w.len() == 2 {
                continue;
            }
            out.push_str(&w.join(" "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str(&format!("options zfs zfs_arc_max={bytes}\n"));
    out
}

/// The ZFS steps, appended to `steps`.
pub(crate) fn plan(zfs: &Zfs, observed: &HostObserved, inputs: &PlanInputs, steps: &mut Vec<Step>) {
    if let Some(gb) = zfs.arc_max_gb {
        arc(u64::from(gb) << 30, observed, steps);
    }
    if zfs.pools.is_empty() && zfs.datasets.is_empty() {
        return;
    }
    let skip = |reason: String| Step::Skip {
        what: "ZFS pools and datasets".into(),
        reason,
    };
    if let Some(reason) = scratch_reason(&observed.scope, "the ZFS pools") {
        steps.push(skip(reason));
        return;
    }
    let Some(z) = &observed.zfs else {
        steps.push(skip(observed.zfs_unusable.clone().unwrap_or_else(|| {
            "zpool/zfs not found (zfsutils-linux is not installed)".into()
        })));
        return;
    };
    let mut usable = z.pools.clone();
    for pool in &zfs.pools {
        if z.pools.contains(&pool.name) {
            continue;
        }
        if pool_steps(pool, z, inputs.wipe_disks, steps) {
            usable.insert(pool.name.clone());
        }
    }
    for d in &zfs.datasets {
        if !usable.contains(&d.pool) {
            steps.push(Step::Skip {
                what: format!("dataset {}", d.name),
                reason: format!("pool {} is not there and is not made by this plan", d.pool),
            });
            continue;
        }
        if let Some(step) = dataset_step(d, z) {
            steps.push(step);
        }
    }
}

fn arc(bytes: u64, observed: &HostObserved, steps: &mut Vec<Step>) {
    let have = observed.file(MODPROBE_PATH).map(|f| f.content.as_str());
    let file = match observed.file(MODPROBE_PATH) {
        // Keep an operator's owner and mode.
        Some(h) => HostFile {
            content: modprobe_conf(have, bytes),
            ..h.clone()
        },
        None => root_file(modprobe_conf(None, bytes)),
    };
    let persisted = write_step(observed, MODPROBE_PATH, file, None);
    let changed = persisted.is_some();
    steps.extend(persisted);
    match observed.file(ARC_PARAMETER) {
        Some(live) if live.content.trim() == bytes.to_string() => {}
        Some(live) => steps.push(Step::SetParameter {
            path: ARC_PARAMETER.into(),
            value: bytes.to_string(),
            reason: format!("the live ARC limit is {}", live.content.trim()),
        }),
        None => steps.push(Step::NeedsReboot {
            what: "the ZFS ARC limit".into(),
            reason: format!(
                "{ARC_PARAMETER} is not there (the zfs module is not loaded): the limit in {MODPROBE_PATH} applies when it loads"
            ),
        }),
    }
    if changed && observed.scope == Scope::Live && observed.has("update-initramfs") {
        steps.push(Step::Run {
            argv: words(&["update-initramfs", "-u", "-k", "all"]),
            reason: format!(
                "{MODPROBE_PATH} changed; a root on ZFS loads the module from the initramfs"
            ),
        });
    }
}

/// Steps for a pool not imported: wipes (only with `wipe`), then `zpool create`; a refusal
/// otherwise. `true` when the pool is made by the plan.
fn pool_steps(pool: &ZfsPool, z: &ZfsObserved, wipe: bool, steps: &mut Vec<Step>) -> bool {
    let what = format!("creating pool {}", pool.name);
    let mut refusals = Vec::new();
    let mut wipes = Vec::new();
    for disk in &pool.disks {
        let state = z.disks.get(disk).cloned().unwrap_or_default();
        if !state.found {
            refusals.push((
                format!("{disk} is not there"),
                "check the disk's name with `ls -l /dev/disk/by-id`".to_string(),
            ));
            continue;
        }
        if !state.mounted.is_empty() {
            refusals.push((
                format!("{disk} is in use: mounted on {}", state.mounted.join(", ")),
                "unmount it first; phoenix never wipes a mounted disk".into(),
            ));
            continue;
        }
        if let Some(label) = &state.pool_label
            && z.pools.contains(label)
        {
            refusals.push((
                format!("{disk} belongs to the imported pool {label}"),
                format!("phoenix never wipes a disk of an imported pool; `zpool export {label}` or destroy it first"),
            ));
            continue;
        }
        let Some(holds) = state.holds() else {
            continue;
        };
        if wipe {
            wipes.push(Step::WipeDisk {
                disk: disk.clone(),
                holds,
                zfs_label: state.signature.as_deref() == Some("zfs_member"),
            });
        } else {
            refusals.push((
                format!("{disk} holds {holds}"),
                format!(
                    "if its content may be lost, run again with --wipe-disks: the plan then wipes exactly {disk}"
                ),
            ));
        }
    }
    if !refusals.is_empty() {
        for (reason, hint) in refusals {
            steps.push(Step::Refused {
                what: what.clone(),
                reason,
                hint,
            });
        }
        return false;
    }
    let forced = !wipes.is_empty();
    steps.extend(wipes);
    let mut argv = words(&["zpool", "create"]);
    if forced {
        argv.push("-f".into());
    }
    argv.extend(words(&["-o", "ashift=12", &pool.name]));
    match pool.raid_level {
        RaidLevel::Single => {}
        RaidLevel::Mirror => argv.push("mirror".into()),
        RaidLevel::Raidz1 => argv.push("raidz1".into()),
        RaidLevel::Raidz2 => argv.push("raidz2".into()),
        RaidLevel::Raidz3 => argv.push("raidz3".into()),
    }
    argv.extend(pool.disks.iter().cloned());
    steps.push(Step::CreatePool {
        pool: pool.name.clone(),
        argv,
        reason: "not imported".into(),
    });
    true
}

/// `zfs create` with the properties, or `zfs set` for those that differ.
fn dataset_step(d: &ZfsDataset, z: &ZfsObserved) -> Option<Step> {
    if !z.datasets.contains(&d.name) {
        let mut argv = words(&["zfs", "create"]);
        for (k, v) in &d.properties {
            argv.push("-o".into());
            argv.push(format!("{k}={v}"));
        }
        argv.push(d.name.clone());
        return Some(Step::Run {
            argv,
            reason: format!("dataset {} is missing", d.name),
        });
    }
    let mut changed = Vec::new();
    let mut why = Vec::new();
    for (k, v) in &d.properties {
        let have = z.properties.get(&(d.name.clone(), k.clone()));
        if have.is_none_or(|h| !same_value(k, h, v)) {
            changed.push(format!("{k}={v}"));
            why.push(format!(
                "{k} {} → {v}",
                have.map_or("unset", String::as_str)
            ));
        }
    }
    if changed.is_empty() {
        return None;
    }
    let mut argv = words(&["zfs", "set"]);
    argv.extend(changed);
    argv.push(d.name.clone());
    Some(Step::Run {
        argv,
        reason: format!("changed in place: {}", why.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_read_like_zfs() {
        assert_eq!(size_bytes("128K"), Some(131_072));
        assert_eq!(size_bytes("1M"), Some(1 << 20));
        assert_eq!(size_bytes("800G"), Some(800 << 30));
        assert_eq!(size_bytes("1.4T"), Some(1_539_316_278_886));
        assert_eq!(size_bytes("none"), Some(0));
        assert_eq!(size_bytes("12345"), Some(12_345));
        assert_eq!(size_bytes("lz4"), None);
        assert!(same_value("quota", "858993459200", "800G"));
        assert!(!same_value("quota", "858993459200", "600G"));
        assert!(same_value("compression", "lz4", "lz4"));
    }

    #[test]
    fn modprobe_keeps_other_options_and_replaces_the_limit() {
        let have =
            "# tuned\noptions zfs zfs_arc_min=1024 zfs_arc_max=99\noptions zfs zfs_arc_max=5\n";
        let want = modprobe_conf(Some(have), 34_359_738_368);
        assert_eq!(
            want,
            "# tuned\noptions zfs zfs_arc_min=1024\noptions zfs zfs_arc_max=34359738368\n"
        );
        assert_eq!(modprobe_conf(Some(&want), 34_359_738_368), want);
    }
}
