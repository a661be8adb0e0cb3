//! Saved plans (`phoenix plan --out FILE`, then `sync all --plan FILE`): the plan as versioned
//! JSON with the configuration's digest and the fingerprints of the observed objects its
//! actions depend on; applying it re-observes and refuses, naming what moved, unless the
//! target and the configuration are as they were. Reads the configuration directory.

use std::path::Path;

use phoenix_plan::Request;
use phoenix_plan::fingerprint::{self, Fingerprints};
use phoenix_plan::plan::Plan;
use serde::{Deserialize, Serialize};

use crate::target::{Failure, Stage, SyncRequest};

pub use crate::observed::{FORMAT_VERSION, ObservedExport};

/// A plan saved for a later apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    pub format_version: u32,
    /// `lab PREFIX` or `pve NODE`.
    pub target: String,
    /// The request, `--only` and `--provision` it was planned for.
    pub request: String,
    pub only: Vec<String>,
    pub provision: bool,
    /// SHA-256 over the configuration directory's files.
    pub config_digest: String,
    /// The observed objects the actions depend on, with their fingerprints.
    pub observed: Fingerprints,
    /// One line per action, as `phoenix plan` shows them.
    pub actions: Vec<String>,
    /// The plan (its actions, files and Swarm actions), secret-looking values redacted.
    pub plan: serde_json::Value,
}

/// Keys whose string values never reach a saved file.
const SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "secret_value",
    "private_key",
    "passphrase",
];

fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if val.is_string() && SECRET_KEYS.iter().any(|s| lower.contains(s)) {
                    *val = serde_json::Value::String("<redacted>".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The part of `plan` a saved plan pins: its waves, files and Swarm actions.
fn pinned(plan: &Plan) -> serde_json::Value {
    let mut v = serde_json::json!({
        "node": plan.node,
        "waves": plan.waves,
        "files": plan.files,
        "swarm": plan.swarm,
    });
    redact(&mut v);
    v
}

fn action_lines(plan: &Plan) -> Vec<String> {
    plan.actions()
        .map(|a| a.to_string())
        .chain(plan.swarm.iter().map(|a| a.to_string()))
        .collect()
}

fn ids_text(ids: &[phoenix_model::model::GuestId]) -> String {
    let words: Vec<String> = ids.iter().map(ToString::to_string).collect();
    words.join(" ")
}

/// The request as the operator types it (`sync all`, `stop 102`, `delete 102 --force`).
fn request_name(r: &Request) -> String {
    match r {
        Request::SyncAll => "sync all".into(),
        Request::Create(ids) => format!("create {}", ids_text(ids)),
        Request::Converge(ids) => format!("converge {}", ids_text(ids)),
        Request::LetsGo => "LetsGo".into(),
        Request::Start(ids) => format!("start {}", ids_text(ids)),
        Request::Stop(ids) => format!("stop {}", ids_text(ids)),
        Request::Restart(ids) => format!("restart {}", ids_text(ids)),
        Request::Shutdown => "shutdown".into(),
        Request::Delete { ids, force: false } => format!("delete {}", ids_text(ids)),
        Request::Delete { ids, force: true } => format!("delete {} --force", ids_text(ids)),
    }
}

fn request_of(req: &SyncRequest) -> (String, Vec<String>) {
    (
        request_name(&req.request),
        req.only.iter().map(|s| s.to_string()).collect(),
    )
}

/// SHA-256 over every file under `dir` (relative path and content, in path order).
pub fn config_digest(dir: &Path) -> std::io::Result<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if path.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push((rel.to_string_lossy().into_owned(), std::fs::read(&path)?));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, content) in &files {
        h.update(name.as_bytes());
        h.update([0]);
        h.update((content.len() as u64).to_le_bytes());
        h.update(content);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl SavedPlan {
    pub fn new(
        plan: &Plan,
        observed: &ObservedExport,
        req: &SyncRequest,
        config_digest: String,
    ) -> Self {
        let (request, only) = request_of(req);
        SavedPlan {
            format_version: FORMAT_VERSION,
            target: observed.target.clone(),
            request,
            only,
            provision: req.provision,
            config_digest,
            observed: fingerprint::of_plan(plan, &observed.state, observed.firewall.as_ref()),
            actions: action_lines(plan),
            plan: pinned(plan),
        }
    }

    /// Read a saved plan, refusing another format version.
    pub fn read(path: &Path) -> Result<Self, Failure> {
        let hint = "make it again with `phoenix plan --target … --out FILE`";
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(
                Stage::Refused,
                format!("saved plan {}: {e}", path.display()),
                hint,
            )
        })?;
        let head: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Failure::new(
                Stage::Refused,
                format!(
                    "saved plan {}:{}:{}: {e}",
                    path.display(),
                    e.line(),
                    e.column()
                ),
                hint,
            )
        })?;
        let version = head["format_version"].as_u64();
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(Failure::new(
                Stage::Refused,
                format!(
                    "saved plan {} has format_version {}, this phoenix reads {FORMAT_VERSION}",
                    path.display(),
                    version.map_or("(none)".into(), |v| v.to_string())
                ),
                hint,
            ));
        }
        serde_json::from_value(head).map_err(|e| {
            Failure::new(
                Stage::Refused,
                format!("saved plan {}: {e}", path.display()),
                hint,
            )
        })
    }

    /// Is `fresh` (planned just now against `observed`, for `req`, from a configuration with
    /// `config_digest`) still exactly this plan? Refused with what moved otherwise.
    pub fn check(
        &self,
        fresh: &Plan,
        observed: &ObservedExport,
        req: &SyncRequest,
        config_digest: &str,
    ) -> Result<(), Failure> {
        let refuse = |message: String| {
            Err(Failure::new(
                Stage::Refused,
                message,
                "nothing was applied; review the change and make a new plan with `phoenix plan --target … --out FILE`",
            ))
        };
        if observed.target != self.target {
            return refuse(format!(
                "the saved plan was made for {}, not {}",
                self.target, observed.target
            ));
        }
        let (request, only) = request_of(req);
        if (request.as_str(), &only, req.provision)
            != (self.request.as_str(), &self.only, self.provision)
        {
            return refuse(format!(
                "the saved plan was made for `{}` (only {:?}, provision {}), not for `{request}` (only {only:?}, provision {})",
                self.request, self.only, self.provision, req.provision
            ));
        }
        if config_digest != self.config_digest {
            return refuse(format!(
                "the configuration changed since the plan was made (digest {} → {})",
                short(&self.config_digest),
                short(config_digest)
            ));
        }
        let moved = fingerprint::moved(&self.observed, &observed.state, observed.firewall.as_ref());
        if !moved.is_empty() {
            return refuse(format!(
                "the target changed since the plan was made: {}",
                moved.join(", ")
            ));
        }
        if pinned(fresh) != self.plan {
            let now = action_lines(fresh);
            let gone: Vec<_> = self.actions.iter().filter(|a| !now.contains(a)).collect();
            let new: Vec<_> = now.iter().filter(|a| !self.actions.contains(a)).collect();
            let mut lines = String::new();
            for a in gone {
                lines.push_str(&format!("\n  - {a}"));
            }
            for a in new {
                lines.push_str(&format!("\n  + {a}"));
            }
            return refuse(format!(
                "the target changed since the plan was made: planning now gives other actions{}",
                if lines.is_empty() {
                    " (the same lines, other details)".to_string()
                } else {
                    lines
                }
            ));
        }
        Ok(())
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_values_are_redacted_and_others_kept() {
        let mut v = serde_json::json!({"set": {"cipassword": "hunter2", "net0": "ip=1"},
            "list": [{"api_token": "x"}], "password_file": 3});
        redact(&mut v);
        assert_eq!(v["set"]["cipassword"], "<redacted>");
        assert_eq!(v["set"]["net0"], "ip=1");
        assert_eq!(v["list"][0]["api_token"], "<redacted>");
        assert_eq!(v["password_file"], 3);
    }
}
