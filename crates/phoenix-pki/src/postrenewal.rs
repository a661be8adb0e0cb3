//! Structured post-renewal actions (reload service S in guest G; rotate Docker secret N and
//! update service M), derived from the bash `post_renewal_command` where its intent is obvious,
//! else from the guest's features. The shell string itself is never run here: the report
//! carries it verbatim for an explicit operator opt-in. Pure.

use std::collections::BTreeMap;
use std::fmt;

use phoenix_model::model::{Certificate, Guest, GuestId};
use serde::Serialize;

/// Which delivered file a Docker secret is created from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    Certificate,
    Key,
    Ca,
}

/// Something to do in a guest after its certificate changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum PostRenewalAction {
    ReloadService {
        guest: GuestId,
        service: String,
    },
    RestartService {
        guest: GuestId,
        service: String,
    },
    RotateDockerSecret {
        guest: GuestId,
        secret: String,
        source: SecretSource,
        /// The Swarm service to `docker service update --force` afterwards.
        service: Option<String>,
    },
}

impl fmt::Display for PostRenewalAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostRenewalAction::ReloadService { guest, service } => {
                write!(f, "reload service {service} in guest {guest}")
            }
            PostRenewalAction::RestartService { guest, service } => {
                write!(f, "restart service {service} in guest {guest}")
            }
            PostRenewalAction::RotateDockerSecret {
                guest,
                secret,
                source,
                service,
            } => {
                write!(
                    f,
                    "rotate docker secret {secret} (from {source:?}) in guest {guest}"
                )?;
                match service {
                    Some(s) => write!(f, " and update service {s}"),
                    None => Ok(()),
                }
            }
        }
    }
}

fn tokens(cmd: &str) -> Vec<String> {
    cmd.chars()
        .map(|c| if "'\"();|&`".contains(c) { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn resolve(tok: &str, vars: &BTreeMap<String, String>) -> String {
    let name = tok
        .trim_start_matches('$')
        .trim_start_matches('{')
        .trim_end_matches('}');
    if tok.starts_with('$') {
        vars.get(name).cloned().unwrap_or_else(|| tok.to_string())
    } else {
        tok.to_string()
    }
}

/// Read the intent of a bash post-renewal string (never executing it).
fn from_command(guest: GuestId, cmd: &str) -> Vec<PostRenewalAction> {
    let toks = tokens(cmd);
    // `NAME="value"` assignments (quotes were turned into spaces: `NAME=` `value`).
    let mut vars = BTreeMap::new();
    for (i, t) in toks.iter().enumerate() {
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            continue;
        }
        let v = if v.is_empty() {
            toks.get(i + 1).cloned()
        } else {
            Some(v.to_string())
        };
        if let Some(v) = v {
            vars.insert(k.to_string(), v);
        }
    }
    let next_arg = |i: usize| {
        toks.iter()
            .skip(i)
            .find(|t| !t.starts_with('-'))
            .map(|t| resolve(t, &vars))
    };
    let mut out = Vec::new();
    let mut secrets = Vec::new();
    let mut service = None;
    for i in 0..toks.len() {
        let w = |k: usize| toks.get(i + k).map(String::as_str);
        match (w(0), w(1), w(2)) {
            (Some("systemctl"), Some(verb @ ("reload" | "restart" | "reload-or-restart")), _) => {
                if let Some(s) = next_arg(i + 2) {
                    let a = if verb == "restart" {
                        PostRenewalAction::RestartService { guest, service: s }
                    } else {
                        PostRenewalAction::ReloadService { guest, service: s }
                    };
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
            (Some("docker"), Some("secret"), Some("create")) => {
                if let Some(name) = next_arg(i + 3) {
                    let file = toks
                        .get(i + 4)
                        .map(|t| resolve(t, &vars))
                        .unwrap_or_default();
                    let base = file.rsplit('/').next().unwrap_or_default().to_string();
                    let source = if base.contains("key") {
                        SecretSource::Key
                    } else if base.starts_with("ca") || name.contains("_ca") {
                        SecretSource::Ca
                    } else {
                        SecretSource::Certificate
                    };
                    secrets.push((name, source));
                }
            }
            (Some("docker"), Some("service"), Some("update")) => service = next_arg(i + 3),
            _ => {}
        }
    }
    out.extend(
        secrets
            .into_iter()
            .map(|(secret, source)| PostRenewalAction::RotateDockerSecret {
                guest,
                secret,
                source,
                service: service.clone(),
            }),
    );
    out
}

/// The structured actions for `entry` after a (re)issue.
pub fn derive(entry: &Certificate, guest: Option<&Guest>) -> Vec<PostRenewalAction> {
    if let Some(cmd) = &entry.post_renewal_command {
        let a = from_command(entry.guest, cmd);
        if !a.is_empty() {
            return a;
        }
    }
    let Some(g) = guest else { return Vec::new() };
    let mut out = Vec::new();
    if g.has_feature("nginx") {
        out.push(PostRenewalAction::ReloadService {
            guest: g.id,
            service: "nginx".to_string(),
        });
    }
    if g.has_feature("traefik") {
        // Traefik does not re-read certificate files referenced by an unchanged dynamic config.
        out.push(PostRenewalAction::RestartService {
            guest: g.id,
            service: "traefik".to_string(),
        });
    }
    out
}
