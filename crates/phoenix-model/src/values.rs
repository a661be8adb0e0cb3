//! Parsers for the small value languages inside the files: names, paths, addresses, ports,
//! firewall endpoints, `lxc.*` lines. Each returns a message suitable for a diagnostic.
//! Config values are data: these parsers decide what is allowed, nothing is ever interpreted
//! by a shell. No I/O.

use crate::diag::Quote;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Endpoint, PortRange};

/// A hostname (RFC 1123): dot-separated labels of letters, digits and `-`, 1–63 each, 253 total.
pub fn hostname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err(format!(
            "`{}` is not a valid host name (1–253 characters)",
            s.quoted()
        ));
    }
    for label in s.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "`{}` is not a valid host name (letters, digits and `-` in dot-separated labels)",
                s.quoted()
            ));
        }
    }
    Ok(())
}

/// A DNS name for a certificate: a hostname, optionally with a `*.` leftmost wildcard label.
pub fn dns_san(s: &str) -> Result<(), String> {
    let rest = s.strip_prefix("*.").unwrap_or(s);
    if rest.contains('*') {
        return Err(format!(
            "`{}`: a wildcard may only be the whole leftmost label (`*.example.org`)",
            s.quoted()
        ));
    }
    if s.starts_with("*.") && !rest.contains('.') {
        return Err(format!(
            "`{}`: a wildcard needs at least two labels after it",
            s.quoted()
        ));
    }
    hostname(rest)
}

/// An identifier: interface, bridge, storage, feature, stack, entrypoint names.
pub fn ident(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !s.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid name (letters, digits, `_`, `-`, `.`; at most 64)",
            s.quoted()
        ))
    }
}

/// An absolute path: starts with `/`, no control characters, no `..` components.
pub fn abs_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("`{}` is not an absolute path", s.quoted()));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("`{}` contains control characters", s.quoted()));
    }
    if s.split('/').any(|c| c == "..") {
        return Err(format!("`{}` contains a `..` component", s.quoted()));
    }
    Ok(())
}

/// A path phoenix passes to Proxmox or writes to (mount points, certificate files, an OS
/// template): absolute, and only letters, digits and `/ . _ - + @` — no blank, no shell
/// metacharacter (`$`, backtick, `;`, `|`, `&`, quotes), no `,` or `=` that would split a
/// Proxmox property string.
pub fn plain_path(s: &str) -> Result<(), String> {
    abs_path(s)?;
    match s.chars().find(|c| !plain_path_char(*c)) {
        Some(c) => Err(format!(
            "`{}` contains `{}`; a path here holds only letters, digits and `/ . _ - + @`",
            s.quoted(),
            c.escape_debug()
        )),
        None => Ok(()),
    }
}

fn plain_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@')
}

/// A file name inside a storage: plain characters, no `/`, not `.` or `..`.
fn volume_file(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.chars().all(|c| c != '/' && plain_path_char(c))
}

/// An LXC OS template (`ostemplate`): `storage:vztmpl/file.tar.zst` (Proxmox's volume id), an
/// absolute path of a tarball on the node, or a bare template name.
pub fn ostemplate(s: &str) -> Result<(), String> {
    volume_ref(
        s,
        "vztmpl",
        "`local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`",
    )
}

/// A VM base image (`template_image`): `storage:content/file`, an absolute path or a file name.
pub fn image_ref(s: &str) -> Result<(), String> {
    volume_ref(s, "", "`local:iso/noble-server-cloudimg-amd64.img`")
}

/// `storage:content/file` (content `want` when given), an absolute plain path, or a file name.
fn volume_ref(s: &str, want: &str, example: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "`{}` is not a volume (`storage:{}/file`, an absolute path or a file name): {why}; for example {example}",
            s.quoted(),
            if want.is_empty() { "content" } else { want },
        ))
    };
    if s.starts_with('/') {
        return plain_path(s);
    }
    let Some((storage, volume)) = s.split_once(':') else {
        return if volume_file(s) {
            Ok(())
        } else {
            bad("a file name holds only letters, digits and `. _ - + @`")
        };
    };
    if ident(storage).is_err() {
        return bad("the storage is not a Proxmox storage id");
    }
    let (content, file) = volume.split_once('/').unwrap_or(("", volume));
    let content_ok = if want.is_empty() {
        content.is_empty() || ident(content).is_ok()
    } else {
        content == want
    };
    if !content_ok {
        return bad(&format!("the content type must be `{want}`"));
    }
    if !volume_file(file) {
        return bad("the file name holds only letters, digits and `. _ - + @`");
    }
    Ok(())
}

/// A Proxmox snapshot name: a letter, then letters, digits, `_` and `-` (at most 40).
pub fn snapshot_name(s: &str) -> Result<(), String> {
    let ok = s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a Proxmox snapshot name (a letter, then letters, digits, `_`, `-`; at most 40)",
            s.quoted()
        ))
    }
}

/// A CIDR address with explicit prefix (`172.16.100.10/24`).
pub fn cidr(s: &str) -> Result<IpNet, String> {
    if !s.contains('/') {
        return Err(format!(
            "`{}` needs a prefix length (for example `{}/24`)",
            s.quoted(),
            s.quoted()
        ));
    }
    s.parse::<IpNet>()
        .map_err(|_| format!("`{}` is not an address in CIDR form", s.quoted()))
}

/// A subnet: CIDR with zero host bits.
pub fn subnet(s: &str) -> Result<IpNet, String> {
    let n = cidr(s)?;
    if n != n.trunc() {
        return Err(format!(
            "`{s}` has host bits set; the subnet is `{}`",
            n.trunc()
        ));
    }
    Ok(n)
}

pub fn ip(s: &str) -> Result<IpAddr, String> {
    s.parse::<IpAddr>()
        .map_err(|_| format!("`{}` is not an IP address", s.quoted()))
}

/// A firewall endpoint: address, CIDR, range `a-b`, alias name or `+ipset`.
pub fn endpoint(s: &str) -> Result<Endpoint, String> {
    if let Some(set) = s.strip_prefix('+') {
        return alias_name(set).map(|_| Endpoint::IpSet(set.to_string()));
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(Endpoint::Net(IpNet::from(a)));
    }
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(Endpoint::Net(n));
    }
    if let Some((a, b)) = s.split_once('-')
        && let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>())
    {
        if a.is_ipv4() != b.is_ipv4() || a > b {
            return Err(format!(
                "`{s}` is not an ascending range of one address family"
            ));
        }
        return Ok(Endpoint::Range(a, b));
    }
    alias_name(s)
        .map(|_| Endpoint::Alias(s.to_string()))
        .map_err(|_| {
            format!(
                "`{}` is not an address, CIDR, range, alias or +ipset",
                s.quoted()
            )
        })
}

fn alias_name(s: &str) -> Result<(), String> {
    let ok = s.len() >= 2
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid alias or ipset name",
            s.quoted()
        ))
    }
}

/// Ports: `80`, `80,443`, `8000:8100` (Proxmox syntax; `-` accepted for ranges too).
pub fn ports(s: &str) -> Result<Vec<PortRange>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = part
            .split_once(':')
            .or_else(|| part.split_once('-'))
            .unwrap_or((part, part));
        let p = |x: &str| {
            x.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{}` is not a port (1–65535)", x.quoted()))
        };
        let (from, to) = (p(a)?, p(b)?);
        if from > to {
            return Err(format!("port range `{part}` is descending"));
        }
        out.push(PortRange { from, to });
    }
    if out.is_empty() {
        return Err("empty port list".into());
    }
    Ok(out)
}

/// A protocol name or number, lower-cased.
pub fn proto(s: &str) -> Result<String, String> {
    let l = s.to_ascii_lowercase();
    let ok =
        !l.is_empty() && l.len() <= 16 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(l)
    } else {
        Err(format!("`{}` is not a protocol name or number", s.quoted()))
    }
}

/// Protocols that have ports.
pub fn proto_has_ports(p: &str) -> bool {
    matches!(p, "tcp" | "udp" | "udplite" | "sctp" | "dccp" | "6" | "17")
}

/// A free-text comment that will be written into a single line of a Proxmox file.
pub fn one_line(s: &str) -> Result<(), String> {
    if s.chars().any(char::is_control) {
        Err(
            "contains a line break or control character (it would end the line in the .fw file)"
                .into(),
        )
    } else {
        Ok(())
    }
}

/// One raw `lxc.*` line: `key: value` or `key=value` (both spellings occur in the files).
pub fn lxc_line(s: &str) -> Result<(String, String), String> {
    one_line(s)?;
    let cut = s
        .find([':', '='])
        .ok_or_else(|| format!("`{}` is not a `lxc.key: value` line", s.quoted()))?;
    let key = s[..cut].trim();
    let value = s[cut + 1..].trim();
    let key_ok = key.starts_with("lxc.")
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_'));
    if !key_ok {
        return Err(format!(
            "`{}` is not an lxc.* configuration key",
            key.quoted()
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// An environment variable name for `{"env": NAME}` secrets.
pub fn env_name(s: &str) -> Result<(), String> {
    let ok = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an environment variable name",
            s.quoted()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_and_plain_paths() {
        for good in [
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            "ubuntu-24.04-standard",
            "/fastData/shared-iso/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        ] {
            assert!(ostemplate(good).is_ok(), "{good}");
        }
        for bad in [
            "local:vztmpl/x$(touch /tmp/x).tar.zst",
            "local:iso/debian.tar.zst",
            "local:vztmpl/../../etc/shadow",
            "/srv/x;reboot",
            "$(id)",
            "local :vztmpl/a.tar.zst",
            "",
        ] {
            assert!(ostemplate(bad).is_err(), "{bad}");
        }
        assert!(image_ref("noble-server-cloudimg-amd64.img").is_ok());
        assert!(image_ref("local:iso/noble.img").is_ok());
        assert!(image_ref("x`id`.img").is_err());
        assert!(plain_path("/mnt/pve/quickOS/lxc-persistent-data/103/ssl").is_ok());
        for bad in [
            "/srv/$(touch /tmp/x)",
            "/srv/a`b`",
            "/srv/a;b",
            "/srv/a|b",
            "/srv/a&b",
            "/srv/a\nb",
            "/srv/a b",
            "/srv/a,mp=/etc",
            "/srv/../etc",
        ] {
            assert!(plain_path(bad).is_err(), "{bad}");
        }
        assert!(
            snapshot_name("final-form").is_ok() && snapshot_name("initial_clean_state").is_ok()
        );
        assert!(snapshot_name("a;b").is_err() && snapshot_name("1a").is_err());
    }

    #[test]
    fn hostnames() {
        assert!(hostname("Nginx-Phoenix").is_ok());
        assert!(hostname("Copy-Cuda12.8").is_ok());
        for bad in ["", "a b", "x;reboot", "$(id)", "-a", "a..b", "a_b"] {
            assert!(hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("10.0.0.13").ok().map(|e| e.to_string()),
            Some("10.0.0.13".into())
        );
        assert!(matches!(endpoint("10.0.0.0/24"), Ok(Endpoint::Net(_))));
        assert!(matches!(
            endpoint("10.0.0.1-10.0.0.9"),
            Ok(Endpoint::Range(..))
        ));
        assert!(matches!(endpoint("+mesh"), Ok(Endpoint::IpSet(_))));
        assert!(matches!(endpoint("traefik_ip"), Ok(Endpoint::Alias(_))));
        for bad in ["10.0.0.300", "; rm -rf /", "10.0.0.9-10.0.0.1", "+"] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_lists() {
        assert_eq!(ports("80,443").map(|v| v.len()), Ok(2));
        assert_eq!(ports("8000:8100").map(|v| v[0].to), Ok(8100));
        for bad in ["", "0", "70000", "80;443", "443:80", "http"] {
            assert!(ports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lxc_lines() {
        assert_eq!(
            lxc_line("lxc.net.0.type: macvlan"),
            Ok(("lxc.net.0.type".into(), "macvlan".into()))
        );
        assert_eq!(
            lxc_line("lxc.apparmor.profile=unconfined"),
            Ok(("lxc.apparmor.profile".into(), "unconfined".into()))
        );
        assert_eq!(
            lxc_line("lxc.mount.auto:sys:rw"),
            Ok(("lxc.mount.auto".into(), "sys:rw".into()))
        );
        assert!(lxc_line("lxc.hook.start: x\nlxc.other: y").is_err());
        assert!(lxc_line("rootfs: local:1").is_err());
    }

    #[test]
    fn subnets_reject_host_bits() {
        assert!(subnet("172.16.100.0/24").is_ok());
        assert!(subnet("172.16.100.1/24").is_err());
        assert!(cidr("172.16.100.10").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(dns_san("*.internal.thinkheads.ai").is_ok());
        assert!(dns_san("a.*.b").is_err());
        assert!(dns_san("*.com").is_err());
        assert!(dns_san("f*o.bar").is_err());
    }
}
