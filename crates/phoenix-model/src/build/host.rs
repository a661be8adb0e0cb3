//! `timezone`, `samba`, `nfs` and `users` → [`HostSetup`], every value checked for what it
//! becomes: a line of `smb.conf` or `/etc/exports`, a file's content, an argv word. No I/O.

use crate::diag::{Code, Quote};
use crate::host::{AdminUser, HostSetup, NfsExport, Samba, SambaShare};
use crate::raw::{self, RawHypervisor, Secret};
use crate::source::Location;
use crate::values;

use super::Builder;

/// Default NetBIOS workgroup (Samba's own).
pub const DEFAULT_WORKGROUP: &str = "WORKGROUP";

/// Share parameters phoenix writes itself from other fields.
const MANAGED_SHARE_KEYS: &[(&str, &str)] = &[("path", "path"), ("validusers", "valid_users")];

impl Builder<'_> {
    pub(super) fn host_setup(&mut self, h: &RawHypervisor, root: &Location) -> HostSetup {
        let timezone = h.timezone.as_ref().and_then(|tz| {
            let loc = root.child("timezone");
            match timezone(tz) {
                Ok(()) => Some(tz.clone()),
                Err(m) => {
                    self.err(
                        Code::InvalidValue,
                        &loc,
                        m,
                        "use a tz database name such as `Europe/Berlin` or `UTC`",
                    );
                    None
                }
            }
        });
        let samba = h
            .samba
            .as_ref()
            .and_then(|s| self.samba(s, &root.child("samba")));
        let nfs_exports = h
            .nfs
            .as_ref()
            .map(|n| self.nfs(n, &root.child("nfs")))
            .unwrap_or_default();
        let admin_user = h
            .users
            .as_ref()
            .and_then(|u| self.admin_user(u, &root.child("users")));
        let zfs = h.zfs.as_ref().map(|z| self.zfs(z, &root.child("zfs")));
        HostSetup {
            timezone,
            samba,
            nfs_exports,
            admin_user,
            zfs,
        }
    }

    fn unix_user(&mut self, name: &str, loc: &Location, groups: bool) -> bool {
        let bare = if groups {
            name.strip_prefix('@').unwrap_or(name)
        } else {
            name
        };
        match unix_name(bare) {
            Ok(()) => true,
            Err(m) => {
                self.err(
                    Code::InvalidName,
                    loc,
                    m,
                    "a Unix user name: lower-case letters, digits, `_` and `-`, at most 32",
                );
                false
            }
        }
    }

    fn samba(&mut self, s: &raw::RawSamba, loc: &Location) -> Option<Samba> {
        let Some(user) = &s.user else {
            self.err(
                Code::MissingField,
                loc,
                "`samba` names no `user`",
                "add \"user\": \"NAME\", the Unix user Samba authenticates",
            );
            return None;
        };
        let user_ok = self.unix_user(user, &loc.child("user"), false);
        if let Some(p) = &s.password {
            self.secret(p, &loc.child("password"), "samba.password");
        }
        let workgroup = s
            .workgroup
            .clone()
            .unwrap_or_else(|| DEFAULT_WORKGROUP.into());
        let wg_ok = workgroup.len() <= 15
            && !workgroup.is_empty()
            && workgroup
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !wg_ok {
            self.err(
                Code::InvalidName,
                &loc.child("workgroup"),
                format!("`{}` is not a NetBIOS workgroup name", workgroup.quoted()),
                "letters, digits, `_` and `-`, at most 15",
            );
        }
        let mut shares: Vec<SambaShare> = Vec::new();
        for (i, raw) in s.shares.iter().enumerate() {
            let sloc = loc.child("shares").child(i);
            if let Some(share) = self.samba_share(raw, &sloc) {
                if shares
                    .iter()
                    .any(|o| o.name.eq_ignore_ascii_case(&share.name))
                {
                    self.err(
                        Code::InvalidValue,
                        &sloc.child("name"),
                        format!("share `{}` is defined twice", share.name.quoted()),
                        "Samba share names are case-insensitive; give each share its own",
                    );
                    continue;
                }
                shares.push(share);
            }
        }
        (user_ok && wg_ok).then(|| Samba {
            user: user.clone(),
            password: s.password.clone(),
            workgroup,
            shares,
            loc: loc.clone(),
        })
    }

    fn samba_share(&mut self, s: &raw::RawSambaShare, loc: &Location) -> Option<SambaShare> {
        let name_ok = share_name(&s.name);
        if let Err(m) = &name_ok {
            self.err(Code::InvalidName, &loc.child("name"), m.clone(), "letters, digits, `_`, `-` and `.`, at most 80; not `global`, `homes` or `printers`");
        }
        let path = if s.path.starts_with('/') {
            s.path.clone()
        } else {
            let abs = format!("/{}", s.path);
            self.err(
                Code::LegacyForm,
                &loc.child("path"),
                format!(
                    "`{}` is relative; phoenix shares `{}`, the dataset's default mount point",
                    s.path.quoted(),
                    abs.quoted()
                ),
                format!("write the absolute path: \"path\": \"{}\"", abs.quoted()),
            );
            abs
        };
        let path_ok = values::plain_path(&path);
        if let Err(m) = &path_ok {
            self.err(
                Code::InvalidPath,
                &loc.child("path"),
                m.clone(),
                "give the shared directory's absolute path",
            );
        }
        let mut options = Vec::new();
        let mut options_ok = true;
        for word in s.options.as_deref().unwrap_or("").split_whitespace() {
            match share_option(word) {
                Ok((k, v)) => options.push((k, v)),
                Err(m) => {
                    options_ok = false;
                    self.err(Code::InvalidValue, &loc.child("options"), m, "write `key=value` words separated by blanks, e.g. \"browseable=yes writable=yes\"");
                }
            }
        }
        let mut users_ok = true;
        for (i, u) in s.valid_users.iter().enumerate() {
            users_ok &= self.unix_user(u, &loc.child("valid_users").child(i), true);
        }
        (name_ok.is_ok() && path_ok.is_ok() && options_ok && users_ok).then(|| SambaShare {
            name: s.name.clone(),
            path,
            options,
            valid_users: s.valid_users.clone(),
            loc: loc.clone(),
        })
    }

    fn nfs(&mut self, n: &raw::RawNfs, loc: &Location) -> Vec<NfsExport> {
        let mut out: Vec<NfsExport> = Vec::new();
        for (i, e) in n.exports.iter().enumerate() {
            let eloc = loc.child("exports").child(i);
            let mut ok = true;
            if let Err(m) = values::plain_path(&e.path) {
                ok = false;
                self.err(
                    Code::InvalidPath,
                    &eloc.child("path"),
                    m,
                    "give the exported directory's absolute path",
                );
            } else if out.iter().any(|o| o.path == e.path) {
                ok = false;
                self.err(
                    Code::InvalidValue,
                    &eloc.child("path"),
                    format!("`{}` is exported twice", e.path.quoted()),
                    "list every client of a directory in one export",
                );
            }
            if e.clients.is_empty() {
                ok = false;
                self.err(
                    Code::InvalidValue,
                    &eloc.child("clients"),
                    "an export without clients is open to every host",
                    "name the clients, or `*` if every host may mount it",
                );
            }
            for (j, c) in e.clients.iter().enumerate() {
                if let Err(m) = nfs_client(c) {
                    ok = false;
                    self.err(
                        Code::InvalidAddress,
                        &eloc.child("clients").child(j),
                        m,
                        "an address, a subnet such as 10.0.0.0/24, a host name or `*`",
                    );
                }
            }
            for (j, o) in e.options.iter().enumerate() {
                if let Err(m) = nfs_option(o) {
                    ok = false;
                    self.err(
                        Code::InvalidValue,
                        &eloc.child("options").child(j),
                        m,
                        "an exports(5) option such as `rw`, `sync` or `fsid=1`",
                    );
                }
            }
            if ok {
                out.push(NfsExport {
                    path: e.path.clone(),
                    clients: e.clients.clone(),
                    options: e.options.clone(),
                    loc: eloc,
                });
            }
        }
        out
    }

    fn admin_user(&mut self, u: &raw::RawUsers, loc: &Location) -> Option<AdminUser> {
        let name = u.username.as_ref()?;
        if !self.unix_user(name, &loc.child("username"), false) {
            return None;
        }
        let password_hash = match &u.password_hash {
            Some(Secret::Plain(p)) if p.is_empty() || p == "NOT_SET" => None,
            Some(s) => {
                self.secret(s, &loc.child("password_hash"), "users.password_hash");
                Some(s.clone())
            }
            None => None,
        };
        let ssh_public_key = u.ssh_public_key.clone().filter(|k| !k.trim().is_empty());
        if let Some(key) = &ssh_public_key {
            let kind = key.split_whitespace().next().unwrap_or("");
            let known = kind.starts_with("ssh-")
                || kind.starts_with("ecdsa-sha2-")
                || kind.starts_with("sk-");
            if key.trim().contains(['\n', '\r']) || !known || key.split_whitespace().count() < 2 {
                self.err(
                    Code::InvalidValue,
                    &loc.child("ssh_public_key"),
                    "`ssh_public_key` is not one OpenSSH public key line".to_string(),
                    "paste one line of the form `ssh-ed25519 AAAA… comment` (the .pub file's content)",
                );
                return None;
            }
        }
        Some(AdminUser {
            username: name.clone(),
            password_hash,
            sudo: u.sudo_access.unwrap_or(false),
            ssh_public_key,
        })
    }
}

/// A tz database name: `Area/City`, `UTC`; no `..`, no leading `/`.
pub fn timezone(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['/', '-'])
        && !s.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{}` is not a time zone name", s.quoted()))
    }
}

/// A Unix user or group name (Debian's `useradd` rules, without `$`).
pub fn unix_name(s: &str) -> Result<(), String> {
    let ok = s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{}` is not a Unix user name", s.quoted()))
    }
}

/// A Samba share name.
pub fn share_name(s: &str) -> Result<(), String> {
    if ["global", "homes", "printers"]
        .iter()
        .any(|r| s.eq_ignore_ascii_case(r))
    {
        return Err(format!("`{}` is a reserved Samba section name", s.quoted()));
    }
    let ok = !s.is_empty()
        && s.len() <= 80
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{}` is not a share name", s.quoted()))
    }
}

/// One `key=value` word of a share's `options`; the key lower-cased.
pub fn share_option(word: &str) -> Result<(String, String), String> {
    let Some((k, v)) = word.split_once('=') else {
        return Err(format!("`{}` is not `key=value`", word.quoted()));
    };
    let key_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !key_ok {
        return Err(format!("`{}` is not a Samba parameter name", k.quoted()));
    }
    let key = k.to_ascii_lowercase();
    let squeezed = key.replace('_', "");
    if let Some((_, field)) = MANAGED_SHARE_KEYS.iter().find(|(m, _)| *m == squeezed) {
        return Err(format!(
            "`{}` is set by phoenix from the share's `{field}`",
            k.quoted()
        ));
    }
    if v.is_empty() || v.chars().any(char::is_control) {
        return Err(format!("`{}` has no value", word.quoted()));
    }
    Ok((key, v.to_string()))
}

/// An exports(5) client: `*`, an address, a subnet, or a host name (wildcards allowed).
pub fn nfs_client(s: &str) -> Result<(), String> {
    if s == "*" || values::ip(s).is_ok() || s.parse::<ipnet::IpNet>().is_ok() {
        return Ok(());
    }
    let name = s.strip_prefix("*.").unwrap_or(s);
    values::hostname(name).map_err(|_| format!("`{}` is not an NFS client", s.quoted()))
}

/// An exports(5) option: `word` or `word=value` with plain characters.
pub fn nfs_option(s: &str) -> Result<(), String> {
    let (k, v) = s.split_once('=').unwrap_or((s, "x"));
    let ok = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{}` is not an export option", s.quoted()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_for_what_they_become() {
        assert!(timezone("America/New_York").is_ok() && timezone("UTC").is_ok());
        for bad in ["", "../etc/passwd", "/UTC", "Europe/Ber lin", "a\nb"] {
            assert!(timezone(bad).is_err(), "{bad}");
        }
        assert!(
            unix_name("heads").is_ok() && unix_name("Heads").is_err() && unix_name("a;b").is_err()
        );
        assert!(
            share_name("shared-prod-data").is_ok()
                && share_name("Global").is_err()
                && share_name("a]b").is_err()
        );
        assert_eq!(
            share_option("Browseable=yes"),
            Ok(("browseable".into(), "yes".into()))
        );
        for bad in [
            "browseable",
            "=yes",
            "path=/x",
            "valid_users=x",
            "a b=1",
            "x=",
        ] {
            assert!(share_option(bad).is_err(), "{bad}");
        }
        for good in [
            "*",
            "10.0.0.111",
            "10.0.0.0/24",
            "nas.example.org",
            "*.example.org",
        ] {
            assert!(nfs_client(good).is_ok(), "{good}");
        }
        for bad in ["10.0.0.1(rw)", "a b", ""] {
            assert!(nfs_client(bad).is_err(), "{bad}");
        }
        assert!(nfs_option("rw").is_ok() && nfs_option("sec=sys:krb5").is_ok());
        assert!(nfs_option("rw,no_root_squash").is_err() && nfs_option("x=(y)").is_err());
    }
}
