//! The Proxmox VE firewall through the API: observe it into a
//! [`phoenix_plan::firewall_api::FirewallState`] and run the planner's
//! [`Action::Firewall`] calls. Does network I/O.
//!
//! Observed: `/cluster/firewall/options|rules|aliases|ipset` (+ each ipset), `…/groups` (+ each
//! group's rules), `/nodes/{node}/firewall/options|rules`, and for every managed guest that
//! exists `/nodes/{node}/{lxc|qemu}/{vmid}/firewall/options|rules` — the guests in bounded
//! parallel as [`crate::observe`] reads their configs. A guest that does not exist yet has an
//! empty firewall (PVE keeps a guest's firewall by VMID in `/etc/pve/firewall/VMID.fw`).
//!
//! Applied: rules are created with `POST …/rules` (PVE inserts at position 0, disabled
//! unless `enable=1` — the planner always sends `enable`) and moved with
//! `PUT …/rules/0 moveto=POS+1` (the rule goes in front of the one at `moveto`, counted before
//! the move). The scope's `digest` as observed goes with its first write. See
//! <https://pve.proxmox.com/pve-docs/api-viewer/#/cluster/firewall/rules>.

use std::collections::BTreeMap;

use phoenix_model::model::{GuestId, GuestKind};
use phoenix_plan::action::Action;
use phoenix_plan::firewall_api::{
    FirewallChange, FirewallScope, FirewallState, FwAlias, FwGroup, FwIpset, FwIpsetEntry, FwRule,
    GuestScope, ScopeState,
};
use reqwest::Method;
use serde_json::Value;

use crate::client::PveClient;
use crate::error::PveError;
use crate::observe::kind_segment;

/// The API path of a scope's firewall (`…/firewall`); groups have no options.
fn base(scope: &FirewallScope, node: &str) -> String {
    match scope {
        FirewallScope::Cluster | FirewallScope::Group { .. } => "/cluster/firewall".into(),
        FirewallScope::Host => format!("/nodes/{node}/firewall"),
        FirewallScope::Guest { id, kind } => {
            format!("/nodes/{node}/{}/{id}/firewall", kind_segment(*kind))
        }
    }
}

/// The rule list of a scope.
fn rules_path(scope: &FirewallScope, node: &str) -> String {
    match scope {
        FirewallScope::Group { name } => {
            format!("/cluster/firewall/groups/{}", segment(name))
        }
        _ => format!("{}/rules", base(scope, node)),
    }
}

/// A path segment: `/` (in a CIDR) and other reserved characters percent-encoded.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A JSON scalar as the API's text (`1` for true, numbers in decimal).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
        _ => None,
    }
}

fn object(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| text(v).map(|t| (k.clone(), t)))
                .collect()
        })
        .unwrap_or_default()
}

fn list(v: &Value) -> Vec<BTreeMap<String, String>> {
    v.as_array()
        .map(|a| a.iter().map(object).collect())
        .unwrap_or_default()
}

/// Rules sorted by `pos` (the API lists them in order; `pos` makes it explicit), with the
/// list's digest.
fn rules(client: &PveClient, path: &str) -> Result<(Vec<FwRule>, Option<String>), PveError> {
    let mut rows = list(&client.get(path, &[])?);
    rows.sort_by_key(|r| r.get("pos").and_then(|p| p.parse::<u64>().ok()));
    let digest = rows.first().and_then(|r| r.get("digest").cloned());
    Ok((rows, digest))
}

fn scope_state(
    client: &PveClient,
    scope: &FirewallScope,
    node: &str,
) -> Result<ScopeState, PveError> {
    let mut options = object(&client.get(&format!("{}/options", base(scope, node)), &[])?);
    let options_digest = options.remove("digest");
    let (rules, rules_digest) = rules(client, &rules_path(scope, node))?;
    Ok(ScopeState {
        options,
        rules,
        options_digest,
        rules_digest,
    })
}

/// Observe the cluster, the node `node` and the `guests` (id, kind, node) that exist,
/// `parallelism` guests at a time.
pub fn observe_firewall(
    client: &PveClient,
    node: &str,
    guests: &[(GuestId, GuestKind, String)],
    parallelism: usize,
) -> Result<FirewallState, PveError> {
    let cluster = scope_state(client, &FirewallScope::Cluster, node)?;
    let aliases = list(&client.get("/cluster/firewall/aliases", &[])?)
        .into_iter()
        .filter_map(|a| {
            Some(FwAlias {
                name: a.get("name")?.clone(),
                cidr: a.get("cidr")?.clone(),
                comment: a.get("comment").cloned(),
            })
        })
        .collect();
    let mut ipsets = Vec::new();
    for s in list(&client.get("/cluster/firewall/ipset", &[])?) {
        let Some(name) = s.get("name").cloned() else {
            continue;
        };
        let entries =
            list(&client.get(&format!("/cluster/firewall/ipset/{}", segment(&name)), &[])?)
                .into_iter()
                .filter_map(|e| {
                    Some(FwIpsetEntry {
                        cidr: e.get("cidr")?.clone(),
                        comment: e.get("comment").cloned(),
                        nomatch: e.get("nomatch").is_some_and(|n| n != "0"),
                    })
                })
                .collect();
        ipsets.push(FwIpset {
            name,
            comment: s.get("comment").cloned(),
            entries,
        });
    }
    let mut groups = Vec::new();
    for g in list(&client.get("/cluster/firewall/groups", &[])?) {
        let Some(name) = g.get("group").cloned() else {
            continue;
        };
        let scope = FirewallScope::Group { name: name.clone() };
        let (rules, rules_digest) = rules(client, &rules_path(&scope, node))?;
        groups.push(FwGroup {
            name,
            comment: g.get("comment").cloned(),
            rules,
            rules_digest,
        });
    }
    let host = scope_state(client, &FirewallScope::Host, node)?;
    Ok(FirewallState {
        cluster,
        aliases,
        ipsets,
        groups,
        host,
        guests: observe_guests(client, guests, parallelism)?,
    })
}

fn observe_guests(
    client: &PveClient,
    guests: &[(GuestId, GuestKind, String)],
    parallelism: usize,
) -> Result<Vec<GuestScope>, PveError> {
    crate::observe::bounded_map(guests, parallelism, |(id, kind, node)| {
        let scope = FirewallScope::Guest {
            id: *id,
            kind: *kind,
        };
        scope_state(client, &scope, node).map(|state| GuestScope {
            id: *id,
            kind: *kind,
            state,
        })
    })
    .into_iter()
    .collect()
}

/// Run one [`Action::Firewall`]; `node` is the node of its scope (a guest's own node).
pub fn apply_action(client: &PveClient, node: &str, action: &Action) -> Result<(), PveError> {
    let Action::Firewall {
        scope,
        change,
        digest,
        ..
    } = action
    else {
        return Ok(());
    };
    let mut params = BTreeMap::new();
    if let Some(d) = digest {
        params.insert("digest".to_string(), d.clone());
    }
    let comment = |p: &mut BTreeMap<String, String>, c: &Option<String>| {
        if let Some(c) = c {
            p.insert("comment".into(), c.clone());
        }
    };
    let ipset = |name: &str| format!("/cluster/firewall/ipset/{}", segment(name));
    let (method, path) = match change {
        FirewallChange::SetOptions { set, delete } => {
            params.extend(set.clone());
            if !delete.is_empty() {
                params.insert("delete".into(), delete.join(","));
            }
            (Method::PUT, format!("{}/options", base(scope, node)))
        }
        FirewallChange::CreateAlias {
            name,
            cidr,
            comment: c,
        } => {
            params.insert("name".into(), name.clone());
            params.insert("cidr".into(), cidr.clone());
            comment(&mut params, c);
            (Method::POST, "/cluster/firewall/aliases".into())
        }
        FirewallChange::UpdateAlias {
            name,
            cidr,
            comment: c,
        } => {
            params.insert("cidr".into(), cidr.clone());
            comment(&mut params, c);
            (
                Method::PUT,
                format!("/cluster/firewall/aliases/{}", segment(name)),
            )
        }
        FirewallChange::DeleteAlias { name } => (
            Method::DELETE,
            format!("/cluster/firewall/aliases/{}", segment(name)),
        ),
        FirewallChange::CreateIpset { name, comment: c } => {
            params.insert("name".into(), name.clone());
            comment(&mut params, c);
            (Method::POST, "/cluster/firewall/ipset".into())
        }
        FirewallChange::DeleteIpset { name } => (Method::DELETE, ipset(name)),
        FirewallChange::AddIpsetEntry {
            ipset: set,
            cidr,
            comment: c,
            nomatch,
        } => {
            params.insert("cidr".into(), cidr.clone());
            comment(&mut params, c);
            if *nomatch {
                params.insert("nomatch".into(), "1".into());
            }
            (Method::POST, ipset(set))
        }
        FirewallChange::UpdateIpsetEntry {
            ipset: set,
            cidr,
            comment: c,
            nomatch,
        } => {
            comment(&mut params, c);
            params.insert("nomatch".into(), if *nomatch { "1" } else { "0" }.into());
            (Method::PUT, format!("{}/{}", ipset(set), segment(cidr)))
        }
        FirewallChange::RemoveIpsetEntry { ipset: set, cidr } => {
            (Method::DELETE, format!("{}/{}", ipset(set), segment(cidr)))
        }
        FirewallChange::CreateGroup { name, comment: c } => {
            params.insert("group".into(), name.clone());
            comment(&mut params, c);
            (Method::POST, "/cluster/firewall/groups".into())
        }
        FirewallChange::DeleteGroup { name } => (
            Method::DELETE,
            format!("/cluster/firewall/groups/{}", segment(name)),
        ),
        FirewallChange::CreateRule { pos, rule } => {
            params.extend(rule.clone());
            let path = rules_path(scope, node);
            client.write(Method::POST, &path, &params)?;
            if *pos > 0 {
                let moveto = BTreeMap::from([("moveto".to_string(), (pos + 1).to_string())]);
                client.write(Method::PUT, &format!("{path}/0"), &moveto)?;
            }
            return Ok(());
        }
        FirewallChange::UpdateRule { pos, set, delete } => {
            params.extend(set.clone());
            if !delete.is_empty() {
                params.insert("delete".into(), delete.join(","));
            }
            (Method::PUT, format!("{}/{pos}", rules_path(scope, node)))
        }
        FirewallChange::DeleteRule { pos } => {
            (Method::DELETE, format!("{}/{pos}", rules_path(scope, node)))
        }
    };
    client.write(method, &path, &params).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_per_scope() {
        let g = FirewallScope::Guest {
            id: GuestId(102),
            kind: GuestKind::Lxc,
        };
        assert_eq!(rules_path(&g, "pve"), "/nodes/pve/lxc/102/firewall/rules");
        assert_eq!(
            rules_path(&FirewallScope::Host, "pve"),
            "/nodes/pve/firewall/rules"
        );
        assert_eq!(
            rules_path(&FirewallScope::Group { name: "web".into() }, "pve"),
            "/cluster/firewall/groups/web"
        );
        assert_eq!(segment("10.0.0.0/24"), "10.0.0.0%2F24");
    }
}
