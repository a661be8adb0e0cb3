//! Manifest entries against how they are issued and delivered: a client certificate from
//! step-ca (W041), a host path outside every mount point of its guest (W042). No I/O.

use crate::diag::Quote;
use std::path::{Component, Path};

use crate::diag::{Code, Diagnostics};
use crate::model::{CertKind, Certificate, DesiredState, Guest, GuestId, MountPoint};

pub fn check(d: &DesiredState, diags: &mut Diagnostics) {
    for c in &d.certificates {
        if c.kind == CertKind::Client
            && let Some(ca) = d.roles.ca
        {
            client_from_step_ca(c, ca, diags);
        }
        let Some(g) = d.guest(c.guest) else { continue };
        for (key, path) in [("cert_path", &c.cert_path), ("key_path", &c.key_path)] {
            outside_mounts(d, g, c, key, path, diags);
        }
    }
}

fn client_from_step_ca(c: &Certificate, ca: GuestId, diags: &mut Diagnostics) {
    diags.emit(
        Code::ClientCertFromStepCa,
        &c.loc.child("cert_type"),
        format!(
            "certificate `{}` is a client certificate, but step-ca (guest {ca}) signs every leaf with its default x509 template, which adds serverAuth to clientAuth: the bash system got a certificate that also passes as a server's, and `phoenix ca issue --step-ca` refuses it",
            c.common_name.quoted()
        ),
        "issue it with phoenix's built-in CA (`--ca-dir`), or give the step-ca provisioner a template with clientAuth alone (`\"options\": {\"x509\": {\"templateFile\": …}}` in ca.json, `\"extKeyUsage\": [\"clientAuth\"]`; `phoenix explain PHX-W041` shows one)",
    );
}

/// `path` lies inside directory `dir` (or is it).
fn inside(path: &str, dir: &str) -> bool {
    Path::new(path).starts_with(Path::new(dir))
}

/// A path that names the host's side of a guest's data: under a `*-persistent-data`
/// directory, or next to some guest's mount (in the parent of its `host_path`, when that
/// parent is not a top-level directory such as `/mnt`).
fn host_looking(d: &DesiredState, path: &str) -> bool {
    let p = Path::new(path);
    if p.components().any(|c| match c {
        Component::Normal(n) => n.to_string_lossy().ends_with("-persistent-data"),
        _ => false,
    }) {
        return true;
    }
    d.guests
        .values()
        .flat_map(|g| &g.mount_points)
        .filter_map(|m| Path::new(&m.host_path).parent())
        .filter(|parent| parent.components().count() >= 3)
        .any(|parent| p.starts_with(parent))
}

/// W042.
fn outside_mounts(
    d: &DesiredState,
    g: &Guest,
    c: &Certificate,
    key: &str,
    path: &str,
    diags: &mut Diagnostics,
) {
    if g.mount_points.iter().any(|m| inside(path, &m.host_path)) {
        return;
    }
    let elsewhere = d.guests.values().filter(|o| o.id != g.id).find_map(|o| {
        o.mount_points
            .iter()
            .find(|m| inside(path, &m.host_path))
            .map(|m| (o, m))
    });
    if g.mount_points.is_empty() && elsewhere.is_none() {
        return;
    }
    if elsewhere.is_none() && !host_looking(d, path) {
        // A path inside the guest (`/etc/nginx/ssl/…`): used as written.
        return;
    }
    let cn = c.common_name.quoted();
    let mounts = if g.mount_points.is_empty() {
        "it has none".to_string()
    } else {
        g.mount_points
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut message = format!(
        "{key} of certificate `{cn}` ({}) lies outside every mount point of guest {} ({mounts}): phoenix writes it at that same path inside the guest, where nothing that reads the host directory sees it",
        path.quoted(),
        g.id
    );
    if let Some((o, m)) = elsewhere {
        message.push_str(&format!(
            "; the path is in guest {}'s mount {}",
            o.id,
            describe(m)
        ));
    }
    let command = c.post_renewal_command.as_deref().unwrap_or("");
    let runs_in = command_guest(command).and_then(|id| d.guest(id));
    let hint = match (runs_in, elsewhere) {
        (Some(n), _) if n.id != g.id => format!(
            "the post_renewal_command runs in guest {}: set \"guest_id\": {} if the certificate is for it, or move the path under a mount of guest {}",
            n.id, n.id, g.id
        ),
        (_, Some((o, _))) => format!(
            "set \"guest_id\": {} if the certificate is for it, or move the path under a mount of guest {}",
            o.id, g.id
        ),
        _ => match moved_to(command, key).and_then(|dest| on_host(g, &dest).map(|h| (dest, h))) {
            Some((dest, host)) => format!(
                "the post_renewal_command installs it at {} in guest {}, which is {} on the host: write that path",
                dest.quoted(),
                g.id,
                host.quoted()
            ),
            None => format!(
                "move the path under one of guest {}'s mounts' host paths, or correct `guest_id`",
                g.id
            ),
        },
    };
    diags.emit(
        Code::CertPathOutsideMounts,
        &c.loc.child(key),
        message,
        hint,
    );
}

fn describe(m: &MountPoint) -> String {
    format!("{} → {}", m.host_path.quoted(), m.container_path.quoted())
}

/// The words of a shell string, quotes and separators stripped (enough to find guest ids
/// and paths; nothing is ever run from it).
fn words(command: &str) -> Vec<&str> {
    command
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')'))
        .map(|w| w.trim_matches(['\'', '"']))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The guest a bash post-renewal command runs in: `pct exec|push|enter N …`, `qm guest exec
/// N …`.
pub(crate) fn command_guest(command: &str) -> Option<GuestId> {
    let w = words(command);
    w.windows(3)
        .find_map(|x| match x {
            ["pct", "exec" | "push" | "enter", n] => n.parse().ok().map(GuestId),
            _ => None,
        })
        .or_else(|| {
            w.windows(4).find_map(|x| match x {
                ["qm", "guest", "exec", n] => n.parse().ok().map(GuestId),
                _ => None,
            })
        })
}

/// Where the command moves the renewed file: `mv|cp|install /tmp/cert.pem DEST` (the bash
/// renewal's staging names, `/tmp/key.pem` for the key).
fn moved_to(command: &str, key: &str) -> Option<String> {
    let staged = if key == "key_path" {
        "/tmp/key.pem"
    } else {
        "/tmp/cert.pem"
    };
    words(command).windows(3).find_map(|x| match x {
        ["mv" | "cp" | "install", src, dest] if *src == staged && dest.starts_with('/') => {
            Some((*dest).to_string())
        }
        _ => None,
    })
}

/// The host path of `in_guest` through `g`'s mounts (the longest mount wins).
fn on_host(g: &Guest, in_guest: &str) -> Option<String> {
    g.mount_points
        .iter()
        .filter_map(|m| {
            let rest = Path::new(in_guest)
                .strip_prefix(Path::new(&m.container_path))
                .ok()?;
            Some((m.container_path.len(), Path::new(&m.host_path).join(rest)))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, p)| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_named_by_commands() {
        assert_eq!(
            command_guest("pct exec 101 -- /bin/bash -c 'systemctl reload nginx'"),
            Some(GuestId(101))
        );
        assert_eq!(
            command_guest(
                "qm guest exec 1001 -- /bin/bash -c 'docker secret create x /tmp/cert.pem'"
            ),
            Some(GuestId(1001))
        );
        assert_eq!(command_guest("(pct push 102 a b)"), Some(GuestId(102)));
        assert_eq!(command_guest("docker service update --force x"), None);
        assert_eq!(command_guest("pct exec abc"), None);
    }

    #[test]
    fn destinations_of_the_staged_files() {
        let cmd = "pct exec 101 -- /bin/bash -c 'mkdir -p /etc/nginx/ssl && mv /tmp/cert.pem /etc/nginx/ssl/n.crt && mv /tmp/key.pem /etc/nginx/ssl/n.key; chmod 600 /etc/nginx/ssl/n.key'";
        assert_eq!(
            moved_to(cmd, "cert_path").as_deref(),
            Some("/etc/nginx/ssl/n.crt")
        );
        assert_eq!(
            moved_to(cmd, "key_path").as_deref(),
            Some("/etc/nginx/ssl/n.key")
        );
        assert_eq!(moved_to("systemctl reload nginx", "cert_path"), None);
    }

    #[test]
    fn inside_is_by_component() {
        assert!(inside("/a/b/c.crt", "/a/b"));
        assert!(inside("/a/b/c.crt", "/a/b/"));
        assert!(!inside("/a/bc/c.crt", "/a/b"));
    }
}
