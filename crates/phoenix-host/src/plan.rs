//! `plan(&HostSetup, &HostObserved) -> SetupPlan`: the files that differ, then the
//! activations they need, as argv vectors; what cannot be done here is a skip with its reason.
//! Pure.

use phoenix_exec::shell::HostFile;
use phoenix_model::host::HostSetup;
use phoenix_render::hostsetup as render;
use serde::Serialize;

use crate::nthash::NtHash;
use crate::observe::{HostObserved, Scope};

/// What `phoenix setup` will do, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetupPlan {
    pub steps: Vec<Step>,
}

impl SetupPlan {
    /// Steps that change the host (skips are not changes).
    pub fn changes(&self) -> usize {
        self.steps.iter().filter(|s| s.is_change()).count()
    }

    /// Destructive steps phoenix refuses (the plan cannot be applied as it is).
    pub fn refusals(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Refused { .. }))
    }

    pub fn destructive(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.is_destructive())
    }

    pub fn needs_reboot(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::NeedsReboot { .. }))
    }
}

/// A check a staged file passes before it is put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `testparm -s PATH.new`.
    Testparm,
    /// `visudo -cf PATH.new`.
    Visudo,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Replace `path` atomically (staged and checked first when `check` is given).
    WriteFile {
        path: String,
        #[serde(skip)]
        file: HostFile,
        reason: String,
        check: Option<Check>,
    },
    /// Run an argv (never through a shell).
    Run { argv: Vec<String>, reason: String },
    /// `smbpasswd -s -a USER`, the password on stdin from the secret.
    SambaPassword { user: String, reason: String },
    /// Not done, and why.
    Skip { what: String, reason: String },
    /// A destructive step phoenix will not take, why, and how to allow it.
    Refused {
        what: String,
        reason: String,
        hint: String,
    },
    /// Erase a disk's signatures before a pool is made on it (destructive: only with
    /// `--wipe-disks`, only the disk named): `zpool labelclear -f` for a ZFS label, then
    /// `wipefs --all`.
    WipeDisk {
        disk: String,
        holds: String,
        zfs_label: bool,
    },
    /// `zpool create` (destructive: what the disks held is gone).
    CreatePool {
        pool: String,
        argv: Vec<String>,
        reason: String,
    },
    /// Write a kernel parameter in place (`tee PATH`, the value on stdin).
    SetParameter {
        path: String,
        value: String,
        reason: String,
    },
    /// A Proxmox VE API write.
    Api {
        method: String,
        path: String,
        params: std::collections::BTreeMap<String, String>,
        reason: String,
    },
    /// `chpasswd -e`, `USER:HASH` on stdin from the secret.
    PasswordHash { user: String, reason: String },
    /// Remove a file phoenix wrote.
    RemoveFile { path: String, reason: String },
    /// Takes effect only after a reboot or a module load (said up front; phoenix never reboots).
    NeedsReboot { what: String, reason: String },
}

impl Step {
    /// The step destroys data if it runs.
    pub fn is_destructive(&self) -> bool {
        matches!(self, Step::WipeDisk { .. } | Step::CreatePool { .. })
    }

    /// The step changes the host or the cluster when applied.
    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Step::Skip { .. } | Step::Refused { .. } | Step::NeedsReboot { .. }
        )
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::WriteFile {
                path,
                reason,
                check,
                ..
            } => {
                write!(f, "write {path} ({reason})")?;
                match check {
                    Some(Check::Testparm) => {
                        write!(f, ", checked first with `testparm -s {path}.new`")?;
                    }
                    Some(Check::Visudo) => {
                        write!(f, ", checked first with `visudo -cf {path}.new`")?
                    }
                    None => {}
                }
                Ok(())
            }
            Step::Run { argv, reason } => write!(f, "run `{}` ({reason})", argv.join(" ")),
            Step::SambaPassword { user, reason } => {
                write!(
                    f,
                    "set the Samba password of {user} with `smbpasswd -s -a {user}`, from the secret on stdin ({reason})"
                )
            }
            Step::Skip { what, reason } => write!(f, "{what}: {reason}"),
            Step::Refused { what, reason, hint } => {
                write!(f, "REFUSED {what}: {reason} (hint: {hint})")
            }
            Step::WipeDisk {
                disk,
                holds,
                zfs_label,
            } => {
                write!(f, "DESTRUCTIVE wipe {disk}, which holds {holds}: ")?;
                if *zfs_label {
                    write!(f, "`zpool labelclear -f {disk}`, then ")?;
                }
                write!(f, "`wipefs --all {disk}`")
            }
            Step::CreatePool { argv, reason, .. } => {
                write!(f, "DESTRUCTIVE run `{}` ({reason})", argv.join(" "))
            }
            Step::SetParameter {
                path,
                value,
                reason,
            } => {
                write!(f, "set {path} to {value} ({reason})")
            }
            Step::Api {
                method,
                path,
                params,
                reason,
            } => {
                let p: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "API {method} {path} {} ({reason})", p.join(" "))
            }
            Step::PasswordHash { user, reason } => write!(
                f,
                "set the password hash of {user} with `chpasswd -e`, from the secret on stdin ({reason})"
            ),
            Step::RemoveFile { path, reason } => write!(f, "remove {path} ({reason})"),
            Step::NeedsReboot { what, reason } => write!(f, "REBOOT NEEDED for {what}: {reason}"),
        }
    }
}

/// The secrets' hashes the planner compares (resolved by the caller; never the secret).
#[derive(Debug, Clone, Default)]
pub struct PlanInputs {
    /// NT hash of `samba.password`, when the configuration gives one.
    pub samba_password: Option<NtHash>,
    /// `--wipe-disks`: a pool's disk that holds something may be wiped (each named in the plan).
    pub wipe_disks: bool,
    /// `--remove-dropped-storage`: storage phoenix made that the configuration dropped is removed.
    pub remove_dropped_storage: bool,
    /// `users.password_hash`, when the configuration gives one (compared with the shadow entry).
    pub admin_password_hash: Option<crate::users::Hidden>,
}

pub(crate) fn root_file(content: String) -> HostFile {
    HostFile {
        content,
        owner: "root".into(),
        group: "root".into(),
        mode: 0o644,
    }
}

/// Why `want` must be written over `have`, or `None` when they are the same.
fn file_reason(have: Option<&HostFile>, want: &HostFile) -> Option<String> {
    let have = match have {
        None => return Some("missing".into()),
        Some(h) if h == want => return None,
        Some(h) => h,
    };
    if have.content != want.content {
        // Lines as multisets: a line repeated in other sections still counts.
        let mut count = std::collections::BTreeMap::<&str, i64>::new();
        for l in want.content.lines() {
            *count.entry(l).or_default() += 1;
        }
        for l in have.content.lines() {
            *count.entry(l).or_default() -= 1;
        }
        let added: i64 = count.values().filter(|n| **n > 0).sum();
        let removed: i64 = -count.values().filter(|n| **n < 0).sum::<i64>();
        return Some(format!("content differs: +{added} -{removed} lines"));
    }
    Some(format!(
        "owner/mode {}:{} {:o} differ from {}:{} {:o}",
        have.owner, have.group, have.mode, want.owner, want.group, want.mode
    ))
}

/// The skip reason for an activation on a scratch root.
pub(crate) fn scratch_reason(scope: &Scope, what: &str) -> Option<String> {
    match scope {
        Scope::Live => None,
        Scope::Scratch(root) => Some(format!(
            "the host root {root} is not the running system: {what} of this machine are left alone"
        )),
    }
}

/// A [`Step::WriteFile`] of `file` at `path`, or `None` when the host already has it.
pub(crate) fn write_step(
    observed: &HostObserved,
    path: &str,
    file: HostFile,
    check: Option<Check>,
) -> Option<Step> {
    let reason = file_reason(observed.file(path), &file)?;
    Some(Step::WriteFile {
        path: path.into(),
        file,
        reason,
        check,
    })
}

/// The plan for `setup` over what was observed.
pub fn plan(setup: &HostSetup, observed: &HostObserved, inputs: &PlanInputs) -> SetupPlan {
    let mut steps = Vec::new();
    let mut write = |steps: &mut Vec<Step>, path: &str, file: HostFile, check: Option<Check>| {
        let reason = file_reason(observed.file(path), &file)?;
        steps.push(Step::WriteFile {
            path: path.into(),
            file,
            reason,
            check,
        });
        Some(())
    };
    let skip = |what: &str, reason: String| Step::Skip {
        what: what.into(),
        reason,
    };

    if let Some(tz) = &setup.timezone
        && write(
            &mut steps,
            render::TIMEZONE_PATH,
            root_file(render::timezone(tz)),
            None,
        )
        .is_some()
    {
        steps.push(skip(
            "/etc/localtime",
            format!("not linked by phoenix yet (`timedatectl set-timezone {tz}` does it)"),
        ));
    }
    apt(observed, &mut steps, &mut write);
    crate::users::plan(setup, observed, inputs, &mut steps);

    if let Some(samba) = &setup.samba {
        let check = observed.has("testparm").then_some(Check::Testparm);
        if check.is_none() {
            steps.push(skip(
                "checking smb.conf",
                "testparm not found (samba-common-bin is not installed)".into(),
            ));
        }
        let changed = write(
            &mut steps,
            render::SMB_CONF_PATH,
            root_file(render::smb_conf(samba)),
            check,
        )
        .is_some();
        // A stopped smbd is started even when the file is unchanged (an earlier start failed).
        let stopped =
            observed.scope == Scope::Live && observed.has("smbcontrol") && !observed.smbd_running;
        if changed || stopped {
            steps.push(smbd_activation(observed, changed));
        }
        match (&samba.password, &inputs.samba_password) {
            (None, _) => steps.push(skip(
                "the Samba password",
                format!(
                    "`samba.password` is not set: the password of {} is left as it is",
                    samba.user
                ),
            )),
            (Some(_), want) => {
                if let Some(reason) = scratch_reason(&observed.scope, "the Samba password database")
                {
                    steps.push(skip("the Samba password", reason));
                } else if !observed.has("smbpasswd") {
                    steps.push(skip(
                        "the Samba password",
                        "smbpasswd not found (samba is not installed)".into(),
                    ));
                } else if observed.samba_hash.is_none() || observed.samba_hash != *want {
                    let reason = if observed.samba_hash.is_none() {
                        "not in the password database"
                    } else {
                        "differs from the secret"
                    };
                    steps.push(Step::SambaPassword {
                        user: samba.user.clone(),
                        reason: reason.into(),
                    });
                }
            }
        }
    }

    if !setup.nfs_exports.is_empty()
        && write(
            &mut steps,
            render::EXPORTS_PATH,
            root_file(render::exports(&setup.nfs_exports)),
            None,
        )
        .is_some()
    {
        steps.push(
            if let Some(reason) = scratch_reason(&observed.scope, "the NFS exports") {
                skip("`exportfs -ra`", reason)
            } else if observed.has("exportfs") {
                Step::Run {
                    argv: vec!["exportfs".into(), "-ra".into()],
                    reason: "the exports changed".into(),
                }
            } else {
                skip(
                    "`exportfs -ra`",
                    "exportfs not found (nfs-kernel-server is not installed)".into(),
                )
            },
        );
    }
    if let Some(zfs) = &setup.zfs {
        crate::zfs::plan::plan(zfs, observed, inputs, &mut steps);
    }
    crate::storage::plan(setup, observed, inputs, &mut steps);
    SetupPlan { steps }
}

/// After smb.conf changed: reload a running smbd; start a stopped one.
fn smbd_activation(observed: &HostObserved, changed: bool) -> Step {
    let skip = |reason: String| Step::Skip {
        what: "reloading smbd".into(),
        reason,
    };
    if let Some(reason) = scratch_reason(&observed.scope, "the services") {
        return skip(reason);
    }
    if !observed.has("smbcontrol") {
        return skip("smbcontrol not found (samba is not installed)".into());
    }
    if observed.smbd_running {
        return Step::Run {
            argv: ["smbcontrol", "smbd", "reload-config"]
                .map(String::from)
                .to_vec(),
            reason: "smb.conf changed".into(),
        };
    }
    if observed.has("systemctl") {
        return Step::Run {
            argv: ["systemctl", "restart", "smbd"].map(String::from).to_vec(),
            reason: if changed {
                "smb.conf changed and smbd is not running"
            } else {
                "smbd is not running"
            }
            .into(),
        };
    }
    skip("smbd is not running and there is no systemctl to start it".into())
}

/// The no-subscription repository on, the enterprise repository off.
fn apt(
    observed: &HostObserved,
    steps: &mut Vec<Step>,
    write: &mut impl FnMut(&mut Vec<Step>, &str, HostFile, Option<Check>) -> Option<()>,
) {
    let what = "the Proxmox apt sources";
    let Some(suite) = observed
        .file(render::OS_RELEASE_PATH)
        .and_then(|f| render::os_codename(&f.content))
    else {
        steps.push(Step::Skip {
            what: what.into(),
            reason: format!("{} has no VERSION_CODENAME", render::OS_RELEASE_PATH),
        });
        return;
    };
    let Some(sources) = render::no_subscription_sources(&suite) else {
        steps.push(Step::Skip {
            what: what.into(),
            reason: format!("phoenix does not know Proxmox's repository for Debian {suite}"),
        });
        return;
    };
    write(
        steps,
        render::NO_SUBSCRIPTION_PATH,
        root_file(sources),
        None,
    );
    for path in render::ENTERPRISE_PATHS {
        if let Some(have) = observed.file(path) {
            let content = render::disable_enterprise(path, &have.content);
            write(
                steps,
                path,
                HostFile {
                    content,
                    ..have.clone()
                },
                None,
            );
        }
    }
}
