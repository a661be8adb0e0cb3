//! Proxmox VE storage for the ZFS datasets (`zfspool`, `dir`) through the API: observe
//! (`GET /storage`), plan (create what is missing, change content types in place, report
//! storage phoenix made that the configuration dropped; remove it only when asked). Which
//! storage phoenix made is kept in [`MADE_STORAGE_PATH`] on the host. Planning is pure; the
//! [`PveApi`] trait is the I/O edge.

use std::collections::{BTreeMap, BTreeSet};

use phoenix_model::host::{HostSetup, Zfs};

use crate::observe::HostObserved;
use crate::plan::{PlanInputs, Step, root_file, write_step};

/// The storage ids phoenix created, one a line.
pub const MADE_STORAGE_PATH: &str = "/var/lib/phoenix/storage-made";

/// The Proxmox VE API as setup needs it (paths under `/api2/json`; replies' `data`).
pub trait PveApi: Send + Sync + std::fmt::Debug {
    fn get(&self, path: &str) -> Result<serde_json::Value, String>;
    fn write(
        &self,
        method: &str,
        path: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<serde_json::Value, String>;
}

/// One storage of `storage.cfg` as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageObserved {
    pub kind: String,
    pub content: BTreeSet<String>,
    pub pool: Option<String>,
    pub path: Option<String>,
}

/// A storage the configuration wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredStorage {
    pub id: String,
    pub kind: String,
    pub content: Vec<String>,
    /// `pool` for `zfspool`, `path` for `dir`.
    pub target: String,
}

/// The storages `zfs.datasets` ask for: id `POOL-NAME` (the bash system's default), a
/// `zfspool` over the dataset or a `dir` at its mount point.
pub fn desired(zfs: &Zfs) -> Vec<DesiredStorage> {
    zfs.datasets
        .iter()
        .filter_map(|d| {
            let kind = d.storage_type.clone()?;
            let target = if kind == "dir" {
                d.properties
                    .iter()
                    .find(|(k, _)| k == "mountpoint")
                    .map_or_else(|| format!("/{}", d.name), |(_, v)| v.clone())
            } else {
                d.name.clone()
            };
            Some(DesiredStorage {
                id: d.name.replace('/', "-"),
                kind,
                content: d.content.clone(),
                target,
            })
        })
        .collect()
}

/// `GET /storage` → id → storage.
pub fn observe(api: &dyn PveApi) -> Result<BTreeMap<String, StorageObserved>, String> {
    let list = api.get("/storage")?;
    let mut out = BTreeMap::new();
    for s in list.as_array().into_iter().flatten() {
        let text = |k: &str| s.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let Some(id) = text("storage") else { continue };
        out.insert(
            id,
            StorageObserved {
                kind: text("type").unwrap_or_else(|| "dir".into()),
                content: text("content")
                    .unwrap_or_default()
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                pool: text("pool"),
                path: text("path"),
            },
        );
    }
    Ok(out)
}

fn recorded(observed: &HostObserved) -> BTreeSet<String> {
    observed
        .file(MADE_STORAGE_PATH)
        .map(|f| {
            f.content
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The storage steps, appended to `steps`.
pub(crate) fn plan(
    setup: &HostSetup,
    observed: &HostObserved,
    inputs: &PlanInputs,
    steps: &mut Vec<Step>,
) {
    let want = setup.zfs.as_ref().map(desired).unwrap_or_default();
    let made = recorded(observed);
    if want.is_empty() && made.is_empty() {
        return;
    }
    let Some(have) = &observed.storage else {
        steps.push(Step::Skip {
            what: "Proxmox storage".into(),
            reason: "no Proxmox API connection (pass --endpoint and --node, or set PROXMOX_VE_*)"
                .into(),
        });
        return;
    };
    let mut api_steps = Vec::new();
    let mut record: BTreeSet<String> = made
        .iter()
        .filter(|id| have.contains_key(*id))
        .cloned()
        .collect();
    for s in &want {
        let Some(h) = have.get(&s.id) else {
            let mut params = BTreeMap::from([
                ("storage".to_string(), s.id.clone()),
                ("type".to_string(), s.kind.clone()),
                ("content".to_string(), s.content.join(",")),
            ]);
            if s.kind == "dir" {
                params.insert("path".into(), s.target.clone());
                // An unmounted dataset leaves an empty directory: PVE must not write into it.
                params.insert("is_mountpoint".into(), "yes".into());
            } else {
                params.insert("pool".into(), s.target.clone());
            }
            api_steps.push(Step::Api {
                method: "POST".into(),
                path: "/storage".into(),
                params,
                reason: format!("storage {} is missing", s.id),
            });
            record.insert(s.id.clone());
            continue;
        };
        let fixed = if s.kind == "dir" { &h.path } else { &h.pool };
        if h.kind != s.kind || fixed.as_deref() != Some(s.target.as_str()) {
            steps.push(Step::Skip {
                what: format!("storage {}", s.id),
                reason: format!(
                    "exists as {} {} but the configuration wants {} {}: left as it is (type, pool and path cannot change in place; remove it by hand to let phoenix make it)",
                    h.kind,
                    fixed.as_deref().unwrap_or("?"),
                    s.kind,
                    s.target
                ),
            });
            continue;
        }
        let content: BTreeSet<String> = s.content.iter().cloned().collect();
        if content != h.content && !content.is_empty() {
            api_steps.push(Step::Api {
                method: "PUT".into(),
                path: format!("/storage/{}", s.id),
                params: BTreeMap::from([("content".to_string(), s.content.join(","))]),
                reason: format!(
                    "content {} → {}",
                    h.content.iter().cloned().collect::<Vec<_>>().join(","),
                    s.content.join(",")
                ),
            });
        }
    }
    let wanted: BTreeSet<&str> = want.iter().map(|s| s.id.as_str()).collect();
    for id in made
        .iter()
        .filter(|id| have.contains_key(*id) && !wanted.contains(id.as_str()))
    {
        if inputs.remove_dropped_storage {
            api_steps.push(Step::Api {
                method: "DELETE".into(),
                path: format!("/storage/{id}"),
                params: BTreeMap::new(),
                reason:
                    "phoenix made it and the configuration dropped it (--remove-dropped-storage)"
                        .into(),
            });
            record.remove(id);
        } else {
            steps.push(Step::Skip {
                what: format!("storage {id}"),
                reason: "phoenix made it and the configuration dropped it: left in place (--remove-dropped-storage removes it; the data on the dataset stays either way)".into(),
            });
        }
    }
    // The record first: a storage made and then not recorded would never be reported.
    let mut content = String::new();
    for id in &record {
        content.push_str(id);
        content.push('\n');
    }
    let mut file = root_file(content);
    file.mode = 0o600;
    if record.is_empty() && observed.file(MADE_STORAGE_PATH).is_none() {
        // Nothing made, nothing to remember.
    } else {
        steps.extend(write_step(observed, MADE_STORAGE_PATH, file, None));
    }
    steps.extend(api_steps);
}
