//! The hypervisor's own files for `phoenix setup`: `smb.conf`, the NFS exports, the Proxmox
//! apt sources (deb822) and `/etc/timezone`. No I/O: values in, text out.

use phoenix_model::host::{NfsExport, Samba};

pub const SMB_CONF_PATH: &str = "/etc/samba/smb.conf";
pub const EXPORTS_PATH: &str = "/etc/exports.d/phoenix.exports";
pub const TIMEZONE_PATH: &str = "/etc/timezone";
pub const OS_RELEASE_PATH: &str = "/etc/os-release";
pub const NO_SUBSCRIPTION_PATH: &str = "/etc/apt/sources.list.d/pve-no-subscription.sources";
/// Where Proxmox VE ships its enterprise repository: deb822 from PVE 9, one-line before.
pub const ENTERPRISE_PATHS: [&str; 2] = [
    "/etc/apt/sources.list.d/pve-enterprise.sources",
    "/etc/apt/sources.list.d/pve-enterprise.list",
];

const HEADER: &str = "Written by phoenix (`phoenix setup`) from phoenix_hypervisor_config.json; local edits are replaced";

/// `/etc/samba/smb.conf`: a standalone server, users in tdbsam, no guests, no printers; one
/// section per share with its options in the file's order and `valid users`.
pub fn smb_conf(s: &Samba) -> String {
    let mut out = format!("# {HEADER}\n[global]\n");
    let global: [(&str, &str); 12] = [
        ("workgroup", &s.workgroup),
        ("server role", "standalone server"),
        ("security", "user"),
        ("passdb backend", "tdbsam"),
        ("map to guest", "never"),
        ("server min protocol", "SMB2_10"),
        ("load printers", "no"),
        ("printing", "bsd"),
        ("printcap name", "/dev/null"),
        ("disable spoolss", "yes"),
        ("log file", "/var/log/samba/log.%m"),
        ("max log size", "1000"),
    ];
    for (k, v) in global {
        out.push_str(&format!("   {k} = {v}\n"));
    }
    for share in &s.shares {
        out.push_str(&format!("\n[{}]\n   path = {}\n", share.name, share.path));
        for (k, v) in &share.options {
            out.push_str(&format!("   {k} = {v}\n"));
        }
        if !share.valid_users.is_empty() {
            out.push_str(&format!(
                "   valid users = {}\n",
                share.valid_users.join(" ")
            ));
        }
    }
    out
}

/// `/etc/exports.d/phoenix.exports`: one line per export, every client with the options.
pub fn exports(list: &[NfsExport]) -> String {
    let mut out = format!("# {HEADER}\n");
    for e in list {
        out.push_str(&e.path);
        let opts = e.options.join(",");
        for c in &e.clients {
            if opts.is_empty() {
                out.push_str(&format!(" {c}"));
            } else {
                out.push_str(&format!(" {c}({opts})"));
            }
        }
        out.push('\n');
    }
    out
}

/// `/etc/timezone`.
pub fn timezone(tz: &str) -> String {
    format!("{tz}\n")
}

/// The Debian codename of `/etc/os-release` (`VERSION_CODENAME`).
pub fn os_codename(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        let v = l
            .strip_prefix("VERSION_CODENAME=")?
            .trim()
            .trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The Proxmox release key that signs a suite's repository, for the suites phoenix knows.
fn proxmox_keyring(suite: &str) -> Option<&'static str> {
    match suite {
        "bookworm" => Some("/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg"),
        "trixie" => Some("/usr/share/keyrings/proxmox-archive-keyring.gpg"),
        _ => None,
    }
}

/// `pve-no-subscription.sources` (deb822) for a Debian suite; `None` for a suite phoenix
/// does not know the Proxmox key of.
pub fn no_subscription_sources(suite: &str) -> Option<String> {
    let key = proxmox_keyring(suite)?;
    Some(format!(
        "# {HEADER}\nTypes: deb\nURIs: http://download.proxmox.com/debian/pve\nSuites: {suite}\nComponents: pve-no-subscription\nSigned-By: {key}\n"
    ))
}

/// The enterprise repository file `path` with every entry disabled: deb822 stanzas get
/// `Enabled: no`, one-line `deb` entries are commented out. Idempotent; the rest is kept.
pub fn disable_enterprise(path: &str, current: &str) -> String {
    if path.ends_with(".sources") {
        let mut out = String::new();
        let mut in_stanza = false;
        for line in current.lines() {
            let blank = line.trim().is_empty();
            if blank && in_stanza {
                out.push_str("Enabled: no\n");
                in_stanza = false;
            }
            if line.to_ascii_lowercase().starts_with("enabled:") {
                continue;
            }
            in_stanza |= !blank && !line.starts_with('#');
            out.push_str(line);
            out.push('\n');
        }
        if in_stanza {
            out.push_str("Enabled: no\n");
        }
        out
    } else {
        current
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("deb ") || t.starts_with("deb-src ") {
                    format!("# {l}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn enterprise_is_disabled_once_in_both_forms() {
        let list = "deb https://enterprise.proxmox.com/debian/pve bookworm pve-enterprise\n";
        let once = disable_enterprise(ENTERPRISE_PATHS[1], list);
        assert_eq!(
            once,
            "# deb https://enterprise.proxmox.com/debian/pve bookworm pve-enterprise\n"
        );
        assert_eq!(disable_enterprise(ENTERPRISE_PATHS[1], &once), once);
        let sources = "Types: deb\nURIs: https://enterprise.proxmox.com/debian/pve\nSuites: trixie\nComponents: pve-enterprise\nSigned-By: /usr/share/keyrings/proxmox-archive-keyring.gpg\n";
        let once = disable_enterprise(ENTERPRISE_PATHS[0], sources);
        assert_eq!(once, format!("{sources}Enabled: no\n"));
        assert_eq!(disable_enterprise(ENTERPRISE_PATHS[0], &once), once);
        let two = format!("{sources}Enabled: yes\n\n{sources}");
        assert_eq!(
            disable_enterprise(ENTERPRISE_PATHS[0], &two),
            format!("{sources}Enabled: no\n\n{sources}Enabled: no\n")
        );
    }

    #[test]
    fn suites_and_codenames() {
        assert_eq!(
            os_codename("ID=debian\nVERSION_CODENAME=bookworm\n").as_deref(),
            Some("bookworm")
        );
        assert_eq!(os_codename("ID=debian\n"), None);
        assert!(
            no_subscription_sources("bookworm")
                .unwrap()
                .contains("Suites: bookworm\n")
        );
        assert_eq!(no_subscription_sources("sid"), None);
    }
}
