//! Observe guests on a PVE node: one `GET /cluster/resources?type=vm` for the inventory, then
//! `GET /nodes/{node}/{lxc|qemu}/{vmid}/config` only for the guests the configuration manages,
//! in bounded parallel. Does network I/O; the result is a plain [`ObservedState`].
//!
//! Status and the template flag come from the inventory (it carries both), so a no-op observe
//! costs 1 + (managed guests) requests. The config `digest` is kept aside for optimistic
//! locking of the next `PUT …/config`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use phoenix_model::model::{GuestId, GuestKind};
use phoenix_plan::observed::{GuestStatus, ObservedGuest, ObservedState};
use serde_json::Value;

use crate::client::PveClient;
use crate::error::PveError;

/// Host files through the host shell (see [`crate::hostfiles`]).
pub use phoenix_exec::shell::files::observe_host_files;

/// One row of `/cluster/resources?type=vm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEntry {
    pub id: GuestId,
    pub kind: GuestKind,
    pub node: String,
    pub name: Option<String>,
    pub status: String,
    pub template: bool,
}

/// What observation found.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Managed guests that exist (the planner's input).
    pub state: ObservedState,
    /// Every guest of the cluster, managed or not.
    pub inventory: Vec<InventoryEntry>,
    /// Config `digest` per observed guest, for `PUT …/config`.
    pub digests: BTreeMap<GuestId, String>,
}

impl Observation {
    /// The node a guest lives on, if it exists.
    pub fn node_of(&self, id: GuestId) -> Option<&str> {
        self.inventory
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.node.as_str())
    }
}

/// `lxc` / `qemu`: the API's path segment for a kind.
pub fn kind_segment(kind: GuestKind) -> &'static str {
    match kind {
        GuestKind::Lxc => "lxc",
        GuestKind::Vm => "qemu",
    }
}

/// Read the inventory (one request).
pub fn inventory(client: &PveClient) -> Result<Vec<InventoryEntry>, PveError> {
    const PATH: &str = "/cluster/resources";
    let data = client.get(PATH, &[("type", "vm")])?;
    let rows = data.as_array().ok_or_else(|| PveError::Decode {
        method: "GET".into(),
        path: PATH.into(),
        message: "data is not a list".into(),
    })?;
    let mut out = Vec::new();
    for row in rows {
        let kind = match row.get("type").and_then(Value::as_str) {
            Some("lxc") => GuestKind::Lxc,
            Some("qemu") => GuestKind::Vm,
            _ => continue,
        };
        let Some(id) = row.get("vmid").and_then(as_u64).and_then(to_id) else {
            continue;
        };
        out.push(InventoryEntry {
            id,
            kind,
            node: string_of(row.get("node")).unwrap_or_default(),
            name: string_of(row.get("name")),
            status: string_of(row.get("status")).unwrap_or_default(),
            template: row.get("template").and_then(as_u64) == Some(1),
        });
    }
    Ok(out)
}

/// One guest's observation and its config digest.
type GuestResult = Result<(ObservedGuest, Option<String>), PveError>;

/// `f` over `items` from at most `parallelism` threads (1–16), results in the order of
/// `items`: the bounded parallel reads of the observation (guest configs, guest firewalls).
pub(crate) fn bounded_map<T: Sync, R: Send>(
    items: &[T],
    parallelism: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..parallelism.clamp(1, 16).min(items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut all) = results.lock() {
                        all.push((i, r));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Observe the inventory and the configs of the `managed` guests, `parallelism` at a time.
pub fn observe_guests(
    client: &PveClient,
    managed: &BTreeSet<GuestId>,
    parallelism: usize,
) -> Result<Observation, PveError> {
    let inventory = inventory(client)?;
    let wanted: Vec<&InventoryEntry> = inventory
        .iter()
        .filter(|e| managed.contains(&e.id))
        .collect();
    let mut results: Vec<(GuestId, GuestResult)> = bounded_map(&wanted, parallelism, |entry| {
        (entry.id, observe_one(client, entry))
    });
    results.sort_by_key(|(id, _)| *id);
    let mut obs = Observation {
        inventory,
        ..Observation::default()
    };
    for (id, r) in results {
        let (guest, digest) = r?;
        if let Some(d) = digest {
            obs.digests.insert(id, d);
        }
        obs.state.guests.push(guest);
    }
    Ok(obs)
}

fn observe_one(client: &PveClient, entry: &InventoryEntry) -> GuestResult {
    let path = format!(
        "/nodes/{}/{}/{}/config",
        entry.node,
        kind_segment(entry.kind),
        entry.id
    );
    let data = client.get(&path, &[])?;
    let map = data.as_object().ok_or_else(|| PveError::Decode {
        method: "GET".into(),
        path: path.clone(),
        message: "config is not an object".into(),
    })?;
    let mut config = BTreeMap::new();
    let mut raw_lxc = Vec::new();
    let mut digest = None;
    for (key, value) in map {
        match key.as_str() {
            "digest" => digest = string_of(Some(value)),
            // Raw `lxc.*` lines come back as [[key, value], …].
            "lxc" => raw_lxc.extend(raw_lines(value)),
            _ => {
                if let Some(text) = string_of(Some(value)) {
                    config.insert(key.clone(), text);
                }
            }
        }
    }
    let template = entry.template || config.get("template").is_some_and(|t| t == "1");
    // `parent` names the snapshot the current state descends from: a guest without it has
    // none, and costs no second request.
    let snapshots = if config.contains_key("parent") {
        snapshot_names(client, entry)?
    } else {
        Vec::new()
    };
    let status = if entry.status == "running" {
        GuestStatus::Running
    } else {
        GuestStatus::Stopped
    };
    Ok((
        ObservedGuest {
            id: entry.id,
            kind: entry.kind,
            status,
            config,
            raw_lxc,
            template,
            snapshots,
        },
        digest,
    ))
}

/// The names of a guest's snapshots (`GET …/snapshot`, `current` left out), sorted.
fn snapshot_names(client: &PveClient, entry: &InventoryEntry) -> Result<Vec<String>, PveError> {
    let path = format!(
        "/nodes/{}/{}/{}/snapshot",
        entry.node,
        kind_segment(entry.kind),
        entry.id
    );
    let data = client.get(&path, &[])?;
    let list = data.as_array().ok_or_else(|| PveError::Decode {
        method: "GET".into(),
        path: path.clone(),
        message: "the snapshot list is not an array".into(),
    })?;
    let mut names: Vec<String> = list
        .iter()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| *n != "current")
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names)
}

fn raw_lines(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| {
                    let k = p.get(0).and_then(Value::as_str)?;
                    let v = string_of(p.get(1))?;
                    Some(format!("{k}: {v}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A scalar as the string PVE's config file would hold (numbers and booleans too).
fn string_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
        _ => None,
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn to_id(n: u64) -> Option<GuestId> {
    u32::try_from(n).ok().map(GuestId)
}

/// The storages of `storage.cfg` (`GET /storage`): id, content types, directory.
pub fn observe_storages(
    client: &PveClient,
) -> Result<Vec<phoenix_plan::observed::ObservedStorage>, PveError> {
    let list = client.get("/storage", &[])?;
    Ok(list
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|s| {
                    let name = s.get("storage")?.as_str()?.to_string();
                    let content = s
                        .get("content")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .split(',')
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect();
                    let path = s
                        .get("path")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string);
                    Some(phoenix_plan::observed::ObservedStorage {
                        name,
                        content,
                        path,
                    })
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_become_config_strings() {
        assert_eq!(string_of(Some(&json!(2048))).as_deref(), Some("2048"));
        assert_eq!(string_of(Some(&json!("a,b"))).as_deref(), Some("a,b"));
        assert_eq!(string_of(Some(&json!(true))).as_deref(), Some("1"));
        assert_eq!(string_of(Some(&json!({"x": 1}))), None);
    }

    #[test]
    fn raw_lxc_pairs_become_lines() {
        let v = json!([["lxc.net.0.type", "macvlan"], ["lxc.net.0.link", "enp1s0"]]);
        assert_eq!(
            raw_lines(&v),
            vec!["lxc.net.0.type: macvlan", "lxc.net.0.link: enp1s0"]
        );
    }
}
