//! Users: the admin user (`users`: account, password hash from a secret through
//! `chpasswd -e` on stdin, sudo through a `visudo`-checked `/etc/sudoers.d` file, an SSH key)
//! on the host and in Proxmox VE (`USER@pam`, Administrator on `/`), and the Unix account
//! the Samba user needs. Observing reads through the shell and the API; planning is pure.

use std::collections::{BTreeMap, BTreeSet};

use phoenix_exec::shell::{HostFile, HostShell, ShellError};
use phoenix_model::host::HostSetup;

use crate::observe::{HostObserved, Scope};
use crate::plan::{Check, PlanInputs, Step, scratch_reason, write_step};
use crate::storage::PveApi;

/// A secret value kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(pub String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A Unix account as `/etc/passwd` (and, for the admin, `/etc/shadow`) has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserObserved {
    pub uid: String,
    pub gid: String,
    pub home: String,
    /// The admin's password hash (read only when the configuration sets one).
    pub hash: Option<Hidden>,
}

/// Users and ACL entries in Proxmox VE.
#[derive(Debug, Clone, Default)]
pub struct PveAccess {
    pub users: BTreeSet<String>,
    /// `(path, role, ugid)` of user entries.
    pub acl: BTreeSet<(String, String, String)>,
}

/// The Administrator role on `/` for the admin.
const ADMIN_ROLE: &str = "Administrator";

pub fn sudoers_path(user: &str) -> String {
    format!("/etc/sudoers.d/phoenix-{user}")
}

/// The accounts the configuration names: the admin, then the Samba user.
fn accounts(setup: &HostSetup) -> Vec<&str> {
    let mut out = Vec::new();
    if let Some(a) = &setup.admin_user {
        out.push(a.username.as_str());
    }
    if let Some(s) = &setup.samba
        && !out.contains(&s.user.as_str())
    {
        out.push(s.user.as_str());
    }
    out
}

/// Read the accounts from `/etc/passwd` (and the admin's hash from `/etc/shadow` when one
/// is configured: only that field is kept).
pub fn observe(
    shell: &dyn HostShell,
    setup: &HostSetup,
) -> Result<BTreeMap<String, UserObserved>, ShellError> {
    let mut out = BTreeMap::new();
    let names = accounts(setup);
    if names.is_empty() {
        return Ok(out);
    }
    let passwd = shell
        .read_file("/etc/passwd")?
        .map(|f| f.content)
        .unwrap_or_default();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 7 && names.contains(&f[0]) {
            out.insert(
                f[0].to_string(),
                UserObserved {
                    uid: f[2].into(),
                    gid: f[3].into(),
                    home: f[5].into(),
                    hash: None,
                },
            );
        }
    }
    if let Some(admin) = &setup.admin_user
        && admin.password_hash.is_some()
        && let Some(entry) = out.get_mut(&admin.username)
        && let Some(shadow) = shell.read_file("/etc/shadow")?
    {
        entry.hash = shadow.content.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(admin.username.as_str()))
                .then(|| f.next().map(|h| Hidden(h.to_string())))
                .flatten()
        });
    }
    Ok(out)
}

/// `GET /access/users` and `GET /access/acl`.
pub fn observe_pve(api: &dyn PveApi) -> Result<PveAccess, String> {
    let mut access = PveAccess::default();
    for u in api.get("/access/users")?.as_array().into_iter().flatten() {
        if let Some(id) = u.get("userid").and_then(|v| v.as_str()) {
            access.users.insert(id.to_string());
        }
    }
    for e in api.get("/access/acl")?.as_array().into_iter().flatten() {
        let text = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        if text("type") == "user" {
            access
                .acl
                .insert((text("path"), text("roleid"), text("ugid")));
        }
    }
    Ok(access)
}

/// The home of `user`: `/etc/passwd`'s, else where `useradd --create-home` puts it.
fn home_of(observed: &HostObserved, user: &str) -> String {
    observed
        .users
        .get(user)
        .map_or_else(|| format!("/home/{user}"), |u| u.home.clone())
}

/// The paths setup reads for the users.
pub fn paths(setup: &HostSetup, observed: &HostObserved) -> Vec<String> {
    let Some(a) = &setup.admin_user else {
        return Vec::new();
    };
    let mut out = vec![sudoers_path(&a.username)];
    if a.ssh_public_key.is_some() {
        out.push(format!(
            "{}/.ssh/authorized_keys",
            home_of(observed, &a.username)
        ));
    }
    out
}

fn run(argv: &[&str], reason: String) -> Step {
    Step::Run {
        argv: argv.iter().map(|w| (*w).to_string()).collect(),
        reason,
    }
}

/// The user steps, appended to `steps`.
pub(crate) fn plan(
    setup: &HostSetup,
    observed: &HostObserved,
    inputs: &PlanInputs,
    steps: &mut Vec<Step>,
) {
    let scratch = scratch_reason(&observed.scope, "the accounts");
    for name in accounts(setup) {
        if observed.users.contains_key(name) {
            continue;
        }
        let admin = setup
            .admin_user
            .as_ref()
            .is_some_and(|a| a.username == name);
        steps.push(match (&scratch, observed.has("useradd")) {
            (Some(reason), _) => Step::Skip {
                what: format!("user {name}"),
                reason: reason.clone(),
            },
            (None, false) => Step::Skip {
                what: format!("user {name}"),
                reason: "useradd not found".into(),
            },
            (None, true) if admin => run(
                &["useradd", "--create-home", "--shell", "/bin/bash", name],
                "the admin user is missing".into(),
            ),
            (None, true) => run(
                &[
                    "useradd",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    name,
                ],
                "Samba's user needs a Unix account".into(),
            ),
        });
    }
    let Some(admin) = &setup.admin_user else {
        return;
    };
    let user = admin.username.as_str();
    let exists = observed.users.get(user);
    if let Some(want) = &inputs.admin_password_hash {
        if let Some(reason) = &scratch {
            steps.push(Step::Skip {
                what: format!("the password of {user}"),
                reason: reason.clone(),
            });
        } else if exists.and_then(|u| u.hash.as_ref()) != Some(want) {
            steps.push(Step::PasswordHash {
                user: user.into(),
                reason: if exists.is_some() {
                    "differs from the secret".into()
                } else {
                    "new account".into()
                },
            });
        }
    }
    let sudoers = sudoers_path(user);
    if admin.sudo {
        let file = HostFile {
            content: format!("# phoenix: users.sudo_access\n{user} ALL=(ALL:ALL) ALL\n"),
            owner: "root".into(),
            group: "root".into(),
            mode: 0o440,
        };
        let check = observed.has("visudo").then_some(Check::Visudo);
        if let Some(step) = write_step(observed, &sudoers, file, check) {
            if check.is_none() {
                steps.push(Step::Skip {
                    what: format!("checking {sudoers}"),
                    reason: "visudo not found (sudo is not installed)".into(),
                });
            }
            steps.push(step);
        }
    } else if observed.file(&sudoers).is_some() {
        steps.push(Step::RemoveFile {
            path: sudoers,
            reason: "`users.sudo_access` is off".into(),
        });
    }
    if let Some(key) = &admin.ssh_public_key {
        let path = format!("{}/.ssh/authorized_keys", home_of(observed, user));
        let have = observed.file(&path);
        let present = have.is_some_and(|f| f.content.lines().any(|l| l.trim() == key.trim()));
        if !present {
            if exists.is_none() && observed.scope != Scope::Live {
                steps.push(Step::Skip {
                    what: format!("the SSH key of {user}"),
                    reason: "the account is not under the host root".into(),
                });
            } else {
                let mut content = have.map(|f| f.content.clone()).unwrap_or_default();
                if !content.is_empty() && !content.ends_with('\n') {
                    content.push('\n');
                }
                content.push_str(key.trim());
                content.push('\n');
                let group = exists.map_or_else(|| user.to_string(), |u| u.gid.clone());
                let file = HostFile {
                    content,
                    owner: user.into(),
                    group,
                    mode: 0o600,
                };
                steps.extend(write_step(observed, &path, file, None));
            }
        }
    }
    let userid = format!("{user}@pam");
    let Some(access) = &observed.pve_access else {
        steps.push(Step::Skip {
            what: format!("Proxmox user {userid}"),
            reason: "no Proxmox API connection (pass --endpoint and --node, or set PROXMOX_VE_*)"
                .into(),
        });
        return;
    };
    if !access.users.contains(&userid) {
        steps.push(Step::Api {
            method: "POST".into(),
            path: "/access/users".into(),
            params: BTreeMap::from([
                ("userid".to_string(), userid.clone()),
                (
                    "comment".to_string(),
                    "phoenix admin (users.username)".to_string(),
                ),
            ]),
            reason: format!("{userid} is missing"),
        });
    }
    if !access
        .acl
        .contains(&("/".to_string(), ADMIN_ROLE.to_string(), userid.clone()))
    {
        steps.push(Step::Api {
            method: "PUT".into(),
            path: "/access/acl".into(),
            params: BTreeMap::from([
                ("path".to_string(), "/".to_string()),
                ("roles".to_string(), ADMIN_ROLE.to_string()),
                ("users".to_string(), userid.clone()),
            ]),
            reason: format!("{userid} is not {ADMIN_ROLE} on /"),
        });
    }
}
