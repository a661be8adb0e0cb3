//! The Proxmox VE firewall through the API: the desired state derived from the model (the
//! same intent `phoenix_render::firewall` writes as `.fw` files for operators), the observed
//! state as the API reports it, and a pure planner comparing the two. No I/O.
//!
//! **Identity.** Options are compared key by key; aliases, ipsets (and their entries) and
//! security groups by name; rules have no identity but their position (the API's only
//! handle), so a scope's rule list is reconciled **by position with a diff**: the longest
//! common subsequence of equal rules is kept, a run of observed rules facing a run of desired
//! ones is updated in place (`PUT …/rules/POS` with `delete` for fields to unset), surplus
//! observed rules are deleted and missing desired ones created at their position. Positions
//! in the actions are the ones valid when the action runs, the scope's earlier actions
//! applied (the executor runs a scope's actions in plan order). A rule deleted by hand thus
//! plans exactly its re-creation.
//!
//! **Normalisation.** Both sides go through the same normalisation of what PVE normalises or
//! defaults: `enable` absent means 0 (the API creates rules disabled unless `enable=1`, so
//! phoenix always sends it), `log: nolog` is the default, `type`/`proto` lower case, the
//! actions ACCEPT/DROP/REJECT upper case, empty values absent, ipset members without host
//! bits and without `/32` (`/128`), the cluster's `enable` time stamp as 1, `pos`, `digest`
//! and `ipversion` ignored. A second run against what the first wrote plans nothing.
//!
//! Relied on: <https://pve.proxmox.com/pve-docs/api-viewer/#/cluster/firewall> (rules insert at
//! position 0; `moveto`; `digest`), `PVE/API2/Firewall/Rules.pm` and `PVE/Firewall.pm`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ipnet::IpNet;
use phoenix_model::model::{DesiredState, Endpoint, FirewallRule, GuestId, GuestKind};
use phoenix_render::RenderOptions;
use phoenix_render::firewall as fwr;
use serde::{Deserialize, Serialize};

use crate::action::{Action, KeyChange, Reason};

/// A rule as the API's fields (`type`, `action`, `proto`, `dport`, `comment`, `enable`, …).
pub type FwRule = BTreeMap<String, String>;

/// The options and rules of one scope (cluster, host or guest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeState {
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<FwRule>,
    /// The digest of the options as read (optimistic lock of the first write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options_digest: Option<String>,
    /// The digest of the rule list as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FwAlias {
    pub name: String,
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FwIpsetEntry {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub nomatch: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FwIpset {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub entries: Vec<FwIpsetEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FwGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub rules: Vec<FwRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_digest: Option<String>,
}

/// One guest's firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestScope {
    pub id: GuestId,
    pub kind: GuestKind,
    #[serde(flatten)]
    pub state: ScopeState,
}

/// The whole firewall of a node, desired or observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallState {
    #[serde(default)]
    pub cluster: ScopeState,
    #[serde(default)]
    pub aliases: Vec<FwAlias>,
    #[serde(default)]
    pub ipsets: Vec<FwIpset>,
    #[serde(default)]
    pub groups: Vec<FwGroup>,
    #[serde(default)]
    pub host: ScopeState,
    #[serde(default)]
    pub guests: Vec<GuestScope>,
}

impl FirewallState {
    pub fn guest(&self, id: GuestId) -> Option<&GuestScope> {
        self.guests.iter().find(|g| g.id == id)
    }
}

/// Where a firewall action applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "scope")]
pub enum FirewallScope {
    Cluster,
    Host,
    Group { name: String },
    Guest { id: GuestId, kind: GuestKind },
}

impl fmt::Display for FirewallScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirewallScope::Cluster => f.write_str("cluster"),
            FirewallScope::Host => f.write_str("host"),
            FirewallScope::Group { name } => write!(f, "group {name}"),
            FirewallScope::Guest { id, kind } => write!(f, "{kind} {id}"),
        }
    }
}

/// One firewall API call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum FirewallChange {
    /// `PUT …/options` with the changed keys and `delete` for the others.
    SetOptions {
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    CreateAlias {
        name: String,
        cidr: String,
        comment: Option<String>,
    },
    UpdateAlias {
        name: String,
        cidr: String,
        comment: Option<String>,
    },
    DeleteAlias {
        name: String,
    },
    CreateIpset {
        name: String,
        comment: Option<String>,
    },
    DeleteIpset {
        name: String,
    },
    AddIpsetEntry {
        ipset: String,
        cidr: String,
        comment: Option<String>,
        nomatch: bool,
    },
    UpdateIpsetEntry {
        ipset: String,
        cidr: String,
        comment: Option<String>,
        nomatch: bool,
    },
    RemoveIpsetEntry {
        ipset: String,
        cidr: String,
    },
    CreateGroup {
        name: String,
        comment: Option<String>,
    },
    DeleteGroup {
        name: String,
    },
    /// `POST …/rules` (inserts at 0), then `PUT …/rules/0` with `moveto` when `pos > 0`.
    CreateRule {
        pos: usize,
        rule: FwRule,
    },
    /// `PUT …/rules/POS` with the changed fields and `delete` for the unset ones.
    UpdateRule {
        pos: usize,
        set: FwRule,
        delete: Vec<String>,
    },
    DeleteRule {
        pos: usize,
    },
}

impl FirewallChange {
    pub fn is_create(&self) -> bool {
        matches!(
            self,
            FirewallChange::CreateAlias { .. }
                | FirewallChange::CreateIpset { .. }
                | FirewallChange::AddIpsetEntry { .. }
                | FirewallChange::CreateGroup { .. }
                | FirewallChange::CreateRule { .. }
        )
    }

    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            FirewallChange::DeleteAlias { .. }
                | FirewallChange::DeleteIpset { .. }
                | FirewallChange::RemoveIpsetEntry { .. }
                | FirewallChange::DeleteGroup { .. }
                | FirewallChange::DeleteRule { .. }
        )
    }
}

/// A rule on one line, in `.fw` order: `in ACCEPT -source +mesh -p tcp -dport 22 # ssh`.
pub fn rule_text(r: &FwRule) -> String {
    let mut s = String::new();
    if r.get("enable").map(String::as_str) != Some("1") {
        s.push('|');
    }
    s.push_str(r.get("type").map_or("?", String::as_str));
    s.push(' ');
    s.push_str(r.get("action").map_or("?", String::as_str));
    for (key, flag) in [
        ("macro", "-macro"),
        ("iface", "-i"),
        ("source", "-source"),
        ("dest", "-dest"),
        ("proto", "-p"),
        ("dport", "-dport"),
        ("sport", "-sport"),
        ("icmp-type", "-icmp-type"),
        ("log", "-log"),
    ] {
        if let Some(v) = r.get(key) {
            s.push_str(&format!(" {flag} {v}"));
        }
    }
    if let Some(c) = r.get("comment") {
        s.push_str(&format!(" # {c}"));
    }
    s
}

impl fmt::Display for FirewallChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let comment =
            |c: &Option<String>| c.as_ref().map(|c| format!(" # {c}")).unwrap_or_default();
        match self {
            FirewallChange::SetOptions { .. } => f.write_str("set options"),
            FirewallChange::CreateAlias {
                name,
                cidr,
                comment: c,
            } => {
                write!(f, "create alias {name} = {cidr}{}", comment(c))
            }
            FirewallChange::UpdateAlias { name, cidr, .. } => {
                write!(f, "update alias {name} = {cidr}")
            }
            FirewallChange::DeleteAlias { name } => write!(f, "delete alias {name}"),
            FirewallChange::CreateIpset { name, .. } => write!(f, "create ipset {name}"),
            FirewallChange::DeleteIpset { name } => write!(f, "delete ipset {name}"),
            FirewallChange::AddIpsetEntry { ipset, cidr, .. } => {
                write!(f, "add {cidr} to ipset {ipset}")
            }
            FirewallChange::UpdateIpsetEntry { ipset, cidr, .. } => {
                write!(f, "update {cidr} in ipset {ipset}")
            }
            FirewallChange::RemoveIpsetEntry { ipset, cidr } => {
                write!(f, "remove {cidr} from ipset {ipset}")
            }
            FirewallChange::CreateGroup { name, .. } => write!(f, "create security group {name}"),
            FirewallChange::DeleteGroup { name } => write!(f, "delete security group {name}"),
            FirewallChange::CreateRule { pos, rule } => {
                write!(f, "create rule at position {pos}: {}", rule_text(rule))
            }
            FirewallChange::UpdateRule { pos, .. } => write!(f, "update rule at position {pos}"),
            FirewallChange::DeleteRule { pos } => write!(f, "delete rule at position {pos}"),
        }
    }
}

// ------------------------------------------------------------------ desired

/// The firewall `d` asks for, as the API stores it (normalised). Every guest gets its
/// options; rules are the operator's then phoenix's derived ones, merged as the renderer
/// merges them (duplicates dropped, comments unique). `_opts` as the renderer takes them (the
/// host scope is the node's; no rule depends on its name).
pub fn desired(d: &DesiredState, _opts: &RenderOptions) -> FirewallState {
    let derived = fwr::derived_rules(d);
    let fw = &d.firewall;
    let cluster = ScopeState {
        options: options(&[
            ("enable", flag(fw.enabled)),
            ("policy_in", fw.policy_in.to_string()),
            ("policy_out", fw.policy_out.to_string()),
        ]),
        rules: rules_of(&fwr::merge(&fw.rules, &[])),
        ..ScopeState::default()
    };
    let aliases = fwr::aliases(d)
        .into_iter()
        .map(|(name, addr)| FwAlias {
            name,
            cidr: addr.to_string(),
            comment: None,
        })
        .collect();
    let ipsets = fwr::ipsets(d)
        .into_iter()
        .map(|(name, members)| FwIpset {
            name: name.to_string(),
            comment: None,
            entries: members
                .into_iter()
                .map(|m| FwIpsetEntry {
                    cidr: Endpoint::Net(m).to_string(),
                    comment: None,
                    nomatch: false,
                })
                .collect(),
        })
        .collect();
    let host = ScopeState {
        options: options(&[("enable", flag(true))]),
        rules: rules_of(&fwr::merge(&[], &derived.host)),
        ..ScopeState::default()
    };
    let guests = d
        .guests
        .values()
        .map(|g| {
            let gf = &g.firewall;
            let mut opts = vec![
                ("enable", flag(gf.enabled)),
                ("policy_in", gf.policy_in.to_string()),
                ("policy_out", gf.policy_out.to_string()),
            ];
            // Without `dhcp: 1` the guest firewall drops DHCP replies to a DHCP NIC.
            if g.nics.iter().any(|n| n.is_dhcp()) {
                opts.push(("dhcp", flag(true)));
            }
            let extra = derived.guests.get(&g.id).map_or(&[][..], Vec::as_slice);
            GuestScope {
                id: g.id,
                kind: g.kind,
                state: ScopeState {
                    options: options(&opts),
                    rules: rules_of(&fwr::merge(&gf.rules, extra)),
                    ..ScopeState::default()
                },
            }
        })
        .collect();
    normalise_state(FirewallState {
        cluster,
        aliases,
        ipsets,
        groups: Vec::new(),
        host,
        guests,
    })
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

fn options(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn rules_of(rules: &[FirewallRule]) -> Vec<FwRule> {
    rules.iter().map(rule_fields).collect()
}

/// A model rule as the API's fields.
pub fn rule_fields(r: &FirewallRule) -> FwRule {
    let mut m = FwRule::new();
    let dir = match r.direction {
        phoenix_model::model::Direction::In => "in",
        phoenix_model::model::Direction::Out => "out",
    };
    m.insert("type".into(), dir.into());
    m.insert("action".into(), r.action.to_string());
    m.insert("enable".into(), flag(r.enabled));
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("iface", r.iface.clone());
    put("source", r.source.as_ref().map(ToString::to_string));
    put("dest", r.dest.as_ref().map(ToString::to_string));
    put("proto", r.proto.clone());
    let ports = |p: &[phoenix_model::model::PortRange]| {
        (!p.is_empty()).then(|| {
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    put("dport", ports(&r.dport));
    put("sport", ports(&r.sport));
    put("comment", r.comment.clone());
    normalise_rule(&m)
}

// ------------------------------------------------------------ normalisation

/// A rule as PVE stores it, for comparison (see the module header).
pub fn normalise_rule(r: &FwRule) -> FwRule {
    let mut out = FwRule::new();
    for (k, v) in r {
        if matches!(k.as_str(), "pos" | "digest" | "ipversion") {
            continue;
        }
        let v: String = match k.as_str() {
            "dport" | "sport" => v.split_whitespace().collect(),
            "comment" => v
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
                .trim()
                .to_string(),
            _ => v.trim().to_string(),
        };
        if v.is_empty() {
            continue;
        }
        let v = match k.as_str() {
            "type" | "proto" => v.to_ascii_lowercase(),
            "enable" => flag(v.parse::<u64>().is_ok_and(|n| n > 0)),
            _ => v,
        };
        if k == "log" && v == "nolog" {
            continue;
        }
        out.insert(k.clone(), v);
    }
    let is_group = out.get("type").is_some_and(|t| t == "group");
    if let Some(a) = out.get_mut("action")
        && !is_group
    {
        *a = a.to_ascii_uppercase();
    }
    out.entry("enable".into()).or_insert_with(|| "0".into());
    out
}

/// Options as PVE stores them: the cluster `enable` time stamp as 1, booleans 0/1, policies
/// upper case, empty values absent.
pub fn normalise_options(o: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    o.iter()
        .filter(|(k, v)| k.as_str() != "digest" && !v.trim().is_empty())
        .map(|(k, v)| {
            let v = v.trim();
            let v = match k.as_str() {
                "enable" | "dhcp" | "ndp" | "radv" | "macfilter" | "ipfilter" | "ebtables"
                | "nosmurfs" | "tcpflags" | "nftables" => {
                    flag(v.parse::<u64>().is_ok_and(|n| n > 0))
                }
                k if k.starts_with("policy_") => v.to_ascii_uppercase(),
                _ => v.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// An ipset member as PVE stores it: host bits cleared, `/32` and `/128` dropped.
pub fn normalise_cidr(c: &str) -> String {
    let c = c.trim();
    match c.parse::<IpNet>() {
        Ok(n) => Endpoint::Net(n.trunc()).to_string(),
        Err(_) => c.to_string(),
    }
}

fn normalise_comment(c: &Option<String>) -> Option<String> {
    c.as_ref()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
}

fn normalise_scope(s: ScopeState) -> ScopeState {
    ScopeState {
        options: normalise_options(&s.options),
        rules: s.rules.iter().map(normalise_rule).collect(),
        ..s
    }
}

/// Every part of `s` normalised (see the module header).
pub fn normalise_state(s: FirewallState) -> FirewallState {
    FirewallState {
        cluster: normalise_scope(s.cluster),
        aliases: s
            .aliases
            .into_iter()
            .map(|a| FwAlias {
                cidr: a.cidr.trim().to_string(),
                comment: normalise_comment(&a.comment),
                name: a.name,
            })
            .collect(),
        ipsets: s
            .ipsets
            .into_iter()
            .map(|i| FwIpset {
                comment: normalise_comment(&i.comment),
                entries: i
                    .entries
                    .into_iter()
                    .map(|e| FwIpsetEntry {
                        cidr: normalise_cidr(&e.cidr),
                        comment: normalise_comment(&e.comment),
                        nomatch: e.nomatch,
                    })
                    .collect(),
                name: i.name,
            })
            .collect(),
        groups: s
            .groups
            .into_iter()
            .map(|g| FwGroup {
                comment: normalise_comment(&g.comment),
                rules: g.rules.iter().map(normalise_rule).collect(),
                ..g
            })
            .collect(),
        host: normalise_scope(s.host),
        guests: s
            .guests
            .into_iter()
            .map(|g| GuestScope {
                state: normalise_scope(g.state),
                ..g
            })
            .collect(),
    }
}

// ------------------------------------------------------------------ planning

/// The firewall actions, in three waves: cluster objects and rules, host and groups first
/// (aliases, ipsets and groups before the rules that reference them, each scope's options
/// after its rules); then every guest's rules and options; then what the configuration no
/// longer has (aliases, ipsets and groups no rule references any more).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallPlan {
    pub cluster: Vec<Action>,
    pub guests: Vec<Action>,
    pub cleanup: Vec<Action>,
}

fn act(
    scope: &FirewallScope,
    change: FirewallChange,
    digest: Option<String>,
    reason: Reason,
) -> Action {
    Action::Firewall {
        scope: scope.clone(),
        change,
        digest,
        reason,
    }
}

/// Compare `desired` (from [`desired`]) with `observed` (as read from the API); both are
/// normalised here. Guests not in `desired` are left alone.
pub fn plan(desired: &FirewallState, observed: &FirewallState) -> FirewallPlan {
    let desired = normalise_state(desired.clone());
    let observed = normalise_state(observed.clone());
    let mut out = FirewallPlan::default();
    let cluster = FirewallScope::Cluster;

    plan_aliases(&desired.aliases, &observed.aliases, &mut out);
    plan_ipsets(&desired.ipsets, &observed.ipsets, &mut out);
    for g in &desired.groups {
        let scope = FirewallScope::Group {
            name: g.name.clone(),
        };
        let o = observed.groups.iter().find(|o| o.name == g.name);
        if o.is_none() {
            out.cluster.push(act(
                &cluster,
                FirewallChange::CreateGroup {
                    name: g.name.clone(),
                    comment: g.comment.clone(),
                },
                None,
                Reason::Missing,
            ));
        }
        let (rules, digest) = o.map_or((&[][..], None), |o| (&o.rules[..], o.rules_digest.clone()));
        plan_rules(&scope, &g.rules, rules, digest, &mut out.cluster);
    }
    plan_rules(
        &cluster,
        &desired.cluster.rules,
        &observed.cluster.rules,
        observed.cluster.rules_digest.clone(),
        &mut out.cluster,
    );
    let host = FirewallScope::Host;
    plan_rules(
        &host,
        &desired.host.rules,
        &observed.host.rules,
        observed.host.rules_digest.clone(),
        &mut out.cluster,
    );
    // Options (`enable`, the policies) after the rules: a firewall switched on finds its
    // accepting rules (management access on the host) already in place.
    plan_options(&host, &desired.host, &observed.host, &mut out.cluster);
    plan_options(
        &cluster,
        &desired.cluster,
        &observed.cluster,
        &mut out.cluster,
    );
    let empty = ScopeState::default();
    for g in &desired.guests {
        let scope = FirewallScope::Guest {
            id: g.id,
            kind: g.kind,
        };
        let o = observed.guest(g.id).map_or(&empty, |o| &o.state);
        plan_rules(
            &scope,
            &g.state.rules,
            &o.rules,
            o.rules_digest.clone(),
            &mut out.guests,
        );
        plan_options(&scope, &g.state, o, &mut out.guests);
    }
    // Surplus groups: their rules first (PVE deletes only empty groups).
    for o in observed
        .groups
        .iter()
        .filter(|o| !desired.groups.iter().any(|g| g.name == o.name))
    {
        let scope = FirewallScope::Group {
            name: o.name.clone(),
        };
        plan_rules(
            &scope,
            &[],
            &o.rules,
            o.rules_digest.clone(),
            &mut out.cleanup,
        );
        out.cleanup.push(act(
            &cluster,
            FirewallChange::DeleteGroup {
                name: o.name.clone(),
            },
            None,
            Reason::Orphaned,
        ));
    }
    out
}

fn plan_options(scope: &FirewallScope, d: &ScopeState, o: &ScopeState, out: &mut Vec<Action>) {
    let mut set = BTreeMap::new();
    let mut changes = Vec::new();
    for (k, v) in &d.options {
        let was = o.options.get(k);
        if was != Some(v) {
            set.insert(k.clone(), v.clone());
            changes.push(KeyChange {
                key: k.clone(),
                from: was.cloned(),
                to: Some(v.clone()),
            });
        }
    }
    let delete: Vec<String> = o
        .options
        .keys()
        .filter(|k| !d.options.contains_key(*k))
        .cloned()
        .collect();
    for k in &delete {
        changes.push(KeyChange {
            key: k.clone(),
            from: o.options.get(k).cloned(),
            to: None,
        });
    }
    if changes.is_empty() {
        return;
    }
    let reason = if o.options.is_empty() {
        Reason::Missing
    } else {
        Reason::Differs { changes }
    };
    out.push(act(
        scope,
        FirewallChange::SetOptions { set, delete },
        o.options_digest.clone(),
        reason,
    ));
}

fn plan_aliases(d: &[FwAlias], o: &[FwAlias], out: &mut FirewallPlan) {
    let cluster = FirewallScope::Cluster;
    let find = |name: &str| o.iter().find(|a| a.name.eq_ignore_ascii_case(name));
    for a in d {
        match find(&a.name) {
            None => out.cluster.push(act(
                &cluster,
                FirewallChange::CreateAlias {
                    name: a.name.clone(),
                    cidr: a.cidr.clone(),
                    comment: a.comment.clone(),
                },
                None,
                Reason::Missing,
            )),
            Some(was) if was.cidr != a.cidr || was.comment != a.comment => {
                let mut changes = Vec::new();
                if was.cidr != a.cidr {
                    changes.push(change(
                        &format!("alias {} cidr", a.name),
                        Some(&was.cidr),
                        Some(&a.cidr),
                    ));
                }
                if was.comment != a.comment {
                    changes.push(change(
                        &format!("alias {} comment", a.name),
                        was.comment.as_ref(),
                        a.comment.as_ref(),
                    ));
                }
                out.cluster.push(act(
                    &cluster,
                    FirewallChange::UpdateAlias {
                        name: was.name.clone(),
                        cidr: a.cidr.clone(),
                        comment: a.comment.clone(),
                    },
                    None,
                    Reason::Differs { changes },
                ));
            }
            Some(_) => {}
        }
    }
    for was in o
        .iter()
        .filter(|was| !d.iter().any(|a| a.name.eq_ignore_ascii_case(&was.name)))
    {
        out.cleanup.push(act(
            &cluster,
            FirewallChange::DeleteAlias {
                name: was.name.clone(),
            },
            None,
            Reason::Orphaned,
        ));
    }
}

fn change(key: &str, from: Option<&String>, to: Option<&String>) -> KeyChange {
    KeyChange {
        key: key.to_string(),
        from: from.cloned(),
        to: to.cloned(),
    }
}

fn plan_ipsets(d: &[FwIpset], o: &[FwIpset], out: &mut FirewallPlan) {
    let cluster = FirewallScope::Cluster;
    for set in d {
        let was = o.iter().find(|w| w.name == set.name);
        if was.is_none() {
            out.cluster.push(act(
                &cluster,
                FirewallChange::CreateIpset {
                    name: set.name.clone(),
                    comment: set.comment.clone(),
                },
                None,
                Reason::Missing,
            ));
        }
        let entries = was.map_or(&[][..], |w| &w.entries[..]);
        for e in &set.entries {
            match entries.iter().find(|w| w.cidr == e.cidr) {
                None => out.cluster.push(act(
                    &cluster,
                    FirewallChange::AddIpsetEntry {
                        ipset: set.name.clone(),
                        cidr: e.cidr.clone(),
                        comment: e.comment.clone(),
                        nomatch: e.nomatch,
                    },
                    None,
                    Reason::Missing,
                )),
                Some(w) if w != e => {
                    let mut changes = Vec::new();
                    if w.comment != e.comment {
                        changes.push(change(
                            &format!("{} comment", e.cidr),
                            w.comment.as_ref(),
                            e.comment.as_ref(),
                        ));
                    }
                    if w.nomatch != e.nomatch {
                        changes.push(change(
                            &format!("{} nomatch", e.cidr),
                            Some(&flag(w.nomatch)),
                            Some(&flag(e.nomatch)),
                        ));
                    }
                    out.cluster.push(act(
                        &cluster,
                        FirewallChange::UpdateIpsetEntry {
                            ipset: set.name.clone(),
                            cidr: e.cidr.clone(),
                            comment: e.comment.clone(),
                            nomatch: e.nomatch,
                        },
                        None,
                        Reason::Differs { changes },
                    ));
                }
                Some(_) => {}
            }
        }
        for w in entries
            .iter()
            .filter(|w| !set.entries.iter().any(|e| e.cidr == w.cidr))
        {
            out.cluster.push(act(
                &cluster,
                FirewallChange::RemoveIpsetEntry {
                    ipset: set.name.clone(),
                    cidr: w.cidr.clone(),
                },
                None,
                Reason::Orphaned,
            ));
        }
    }
    for w in o.iter().filter(|w| !d.iter().any(|s| s.name == w.name)) {
        for e in &w.entries {
            out.cleanup.push(act(
                &cluster,
                FirewallChange::RemoveIpsetEntry {
                    ipset: w.name.clone(),
                    cidr: e.cidr.clone(),
                },
                None,
                Reason::Orphaned,
            ));
        }
        out.cleanup.push(act(
            &cluster,
            FirewallChange::DeleteIpset {
                name: w.name.clone(),
            },
            None,
            Reason::Orphaned,
        ));
    }
}

/// One step of the alignment of observed rules with desired ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Keep,
    /// Observed index, desired index.
    Update(usize, usize),
    Delete(usize),
    Create(usize),
}

/// Align `o` with `d`: the longest common subsequence kept; between two kept rules, the
/// observed run facing the desired run is paired as updates (as many as possible, the most
/// similar ones together, order kept), the rest deleted or created.
fn align(d: &[FwRule], o: &[FwRule]) -> Vec<Step> {
    let (n, m) = (o.len(), d.len());
    // lcs[i][j]: the LCS length of o[i..] and d[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if o[i] == d[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut steps = Vec::new();
    let (mut i, mut j) = (0, 0);
    let (mut dels, mut ins) = (Vec::new(), Vec::new());
    while i < n || j < m {
        if i < n && j < m && o[i] == d[j] {
            steps.extend(pair_run(d, o, &dels, &ins));
            dels.clear();
            ins.clear();
            steps.push(Step::Keep);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ins.push(j);
            j += 1;
        } else {
            dels.push(i);
            i += 1;
        }
    }
    steps.extend(pair_run(d, o, &dels, &ins));
    steps
}

/// Fields two rules share (the pairing's tie-break).
fn similarity(a: &FwRule, b: &FwRule) -> usize {
    a.iter().filter(|(k, v)| b.get(*k) == Some(*v)).count()
}

/// One run of observed rules (`dels`) facing desired ones (`ins`): a monotonic pairing with
/// the most pairs (one write each instead of two), then the most shared fields; the steps in
/// the order of both lists, so positions counted as they run stay right.
fn pair_run(d: &[FwRule], o: &[FwRule], dels: &[usize], ins: &[usize]) -> Vec<Step> {
    let (k, m) = (dels.len(), ins.len());
    // best[a][b]: (pairs, similarity) for dels[a..] and ins[b..].
    let mut best = vec![vec![(0usize, 0usize); m + 1]; k + 1];
    for a in (0..k).rev() {
        for b in (0..m).rev() {
            let (p, s) = best[a + 1][b + 1];
            let pair = (p + 1, s + similarity(&o[dels[a]], &d[ins[b]]));
            best[a][b] = pair.max(best[a + 1][b]).max(best[a][b + 1]);
        }
    }
    let mut steps = Vec::new();
    let (mut a, mut b) = (0, 0);
    while a < k && b < m {
        let (p, s) = best[a + 1][b + 1];
        let pair = (p + 1, s + similarity(&o[dels[a]], &d[ins[b]]));
        if best[a][b] == pair {
            steps.push(Step::Update(dels[a], ins[b]));
            a += 1;
            b += 1;
        } else if best[a][b] == best[a + 1][b] {
            steps.push(Step::Delete(dels[a]));
            a += 1;
        } else {
            steps.push(Step::Create(ins[b]));
            b += 1;
        }
    }
    steps.extend(dels[a..].iter().map(|&x| Step::Delete(x)));
    steps.extend(ins[b..].iter().map(|&x| Step::Create(x)));
    steps
}

/// Reconcile one scope's rule list (see the module header); `digest` goes with the first write.
fn plan_rules(
    scope: &FirewallScope,
    d: &[FwRule],
    o: &[FwRule],
    digest: Option<String>,
    out: &mut Vec<Action>,
) {
    let mut digest = digest;
    let mut cur = 0usize;
    for step in align(d, o) {
        let (change, reason) = match step {
            Step::Keep => {
                cur += 1;
                continue;
            }
            Step::Update(oi, di) => {
                let (was, want) = (&o[oi], &d[di]);
                let mut set = FwRule::new();
                let mut changes = Vec::new();
                for (k, v) in want {
                    if was.get(k) != Some(v) {
                        set.insert(k.clone(), v.clone());
                        changes.push(change(&format!("rule {cur} {k}"), was.get(k), Some(v)));
                    }
                }
                let delete: Vec<String> = was
                    .keys()
                    .filter(|k| !want.contains_key(*k))
                    .cloned()
                    .collect();
                for k in &delete {
                    changes.push(change(&format!("rule {cur} {k}"), was.get(k), None));
                }
                let c = FirewallChange::UpdateRule {
                    pos: cur,
                    set,
                    delete,
                };
                cur += 1;
                (c, Reason::Differs { changes })
            }
            Step::Delete(_) => (FirewallChange::DeleteRule { pos: cur }, Reason::Orphaned),
            Step::Create(di) => {
                let c = FirewallChange::CreateRule {
                    pos: cur,
                    rule: d[di].clone(),
                };
                cur += 1;
                (c, Reason::Missing)
            }
        };
        out.push(act(scope, change, digest.take(), reason));
    }
}

/// The scopes that differ, each with the plan's wording of its differences (for `status`).
pub fn drift(actions: &[&Action]) -> BTreeMap<FirewallScope, Vec<String>> {
    let mut out: BTreeMap<FirewallScope, Vec<String>> = BTreeMap::new();
    for a in actions {
        if let Action::Firewall {
            scope,
            change,
            reason,
            ..
        } = a
        {
            let text = match reason {
                Reason::Differs { changes } => {
                    let keys: Vec<String> = changes.iter().map(ToString::to_string).collect();
                    format!("{change}: {}", keys.join("; "))
                }
                other => format!("{change} ({other})"),
            };
            out.entry(scope.clone()).or_default().push(text);
        }
    }
    out
}

/// Scopes the desired state has (for `status`: those without actions are in sync).
pub fn scopes(d: &FirewallState) -> BTreeSet<FirewallScope> {
    let mut s = BTreeSet::from([FirewallScope::Cluster, FirewallScope::Host]);
    s.extend(d.groups.iter().map(|g| FirewallScope::Group {
        name: g.name.clone(),
    }));
    s.extend(d.guests.iter().map(|g| FirewallScope::Guest {
        id: g.id,
        kind: g.kind,
    }));
    s
}

/// Names of the firewall waves.
pub const WAVE_CLUSTER: &str = "firewall: cluster objects, cluster and host rules";
pub const WAVE_GUESTS: &str = "firewall: guests";
pub const WAVE_CLEANUP: &str = "firewall: objects no longer configured";

/// Put `fw` into a whole-sync `plan` in place of the `.fw` host files (the API is the one
/// path to the firewall): those files and their actions leave the plan; the cluster wave goes
/// after the host files, the guests' wave after the guests exist and before they start, the
/// cleanup after it. The summary is recounted.
pub fn merge_into(plan: &mut crate::plan_types::Plan, fw: FirewallPlan) {
    use crate::subsystem::{Subsystem, of_file};
    plan.files
        .retain(|f| of_file(&f.file.target, &f.file.path) != Subsystem::Firewall);
    for w in &mut plan.waves {
        w.actions.retain(|a| {
            !matches!(a, Action::WriteFile { target, path, .. }
                if of_file(target, path) == Subsystem::Firewall)
        });
    }
    let wave = |name: &str, actions: Vec<Action>| crate::plan_types::Wave {
        name: name.to_string(),
        actions,
    };
    let host = plan
        .waves
        .iter()
        .position(|w| w.name.starts_with("host network"))
        .map_or(0, |i| i + 1);
    plan.waves.insert(host, wave(WAVE_CLUSTER, fw.cluster));
    let after_guests = plan
        .waves
        .iter()
        .rposition(|w| w.name.starts_with("guests, level"))
        .map_or(host + 1, |i| i + 1);
    plan.waves
        .insert(after_guests, wave(WAVE_GUESTS, fw.guests));
    plan.waves
        .insert(after_guests + 1, wave(WAVE_CLEANUP, fw.cleanup));
    plan.waves.retain(|w| !w.actions.is_empty());
    let mut summary = crate::plan_types::Summary::default();
    for e in plan
        .actions()
        .map(|a| a.effect())
        .chain(plan.swarm.iter().map(|a| a.effect()))
    {
        use crate::action::Effect;
        match e {
            Effect::Create => summary.create += 1,
            Effect::Change => summary.change += 1,
            Effect::Delete => summary.delete += 1,
            Effect::Check => summary.check += 1,
        }
    }
    plan.summary = summary;
}

#[cfg(test)]
#[path = "firewall_api_tests.rs"]
mod tests;
