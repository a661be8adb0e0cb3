//! DNS from inside each running container, through `pct exec` on the node's shell: the guest's
//! `/etc/resolv.conf` names a mesh DNS server (`dns/<guest>/resolver`), and every name the
//! mesh DNS serves resolves to its address, an unknown local name to nothing
//! (`dns/<guest>/<name>`), asked with `getent ahosts NAME` — the guest's own resolver, as its
//! programs see it (glibc's `getent` is in every Debian/Ubuntu template; `dig`/`nslookup`
//! often are not). Argv only; nothing is written. VMs are skipped (their exec is a POST).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use phoenix_exec::guest::GuestExec;
use phoenix_model::model::GuestId;
use phoenix_verify::dns::{DnsCheck, DnsExpect};
use phoenix_verify::expect::dns_expectations;
use phoenix_verify::report::{ProbeResult, Status, Subject};

use super::{GuestState, NodeVerify, unreachable_inside};
use crate::guestexec::LxcExec;

/// A command's result inside a guest: exit status, stdout, stderr, or why it could not run.
pub(crate) type Ran = Result<(i32, String, String), String>;

/// Run `argv` in container `id` with the per-command deadline.
pub(crate) fn run_in(v: &NodeVerify<'_>, id: GuestId, argv: &[&str]) -> Ran {
    let mut exec = LxcExec::new(v.shell, id);
    exec.deadline = v.deadlines.guest_command;
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    exec.run(&argv)
        .map(|o| (o.status, o.stdout, o.stderr))
        .map_err(|e| e.to_string())
}

/// The names to resolve: every record of the mesh DNS and one unknown local name.
fn names(v: &NodeVerify<'_>) -> Vec<DnsCheck> {
    dns_expectations(v.d, "")
        .checks
        .into_iter()
        .filter(|c| !matches!(c.expect, DnsExpect::Answered))
        .collect()
}

/// Every DNS check of every configured guest (a skip per guest that cannot be entered).
pub fn dns(v: &NodeVerify<'_>, states: &BTreeMap<GuestId, GuestState>) -> Vec<ProbeResult> {
    let checks = names(v);
    let ids: Vec<GuestId> =
        v.d.guests
            .values()
            .filter(|g| !g.is_template)
            .map(|g| g.id)
            .collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = ids
            .iter()
            .map(|id| {
                let checks = &checks;
                s.spawn(move || match unreachable_inside(v.d, states, *id) {
                    Some(why) => vec![ProbeResult::skip(
                        format!("dns/guest:{id}"),
                        Subject::Guest(*id),
                        format!("dns from inside guest {id}"),
                        why,
                    )],
                    None => guest_dns(v, *id, checks),
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn result(
    id: String,
    guest: GuestId,
    check: String,
    r: Result<String, String>,
    start: Instant,
) -> ProbeResult {
    let (status, observed) = match r {
        Ok(o) => (Status::Pass, o),
        Err(e) => (
            Status::Fail {
                evidence: e.clone(),
            },
            e,
        ),
    };
    ProbeResult {
        id,
        subject: Subject::Guest(guest),
        check,
        status,
        observed,
        duration: start.elapsed(),
    }
}

fn guest_dns(v: &NodeVerify<'_>, id: GuestId, checks: &[DnsCheck]) -> Vec<ProbeResult> {
    let mut out = vec![resolver(v, id)];
    for c in checks {
        let start = Instant::now();
        let check = format!(
            "dns {} {} (getent ahosts, pct exec in container {id})",
            c.name, c.expect
        );
        let ran = run_in(v, id, &["getent", "ahosts", &c.name]);
        out.push(result(
            format!("dns/guest:{id}/{}", c.name),
            id,
            check,
            judge(&c.expect, ran),
            start,
        ));
    }
    out
}

/// `dns/<guest>/resolver`: `/etc/resolv.conf` lists a mesh DNS server.
fn resolver(v: &NodeVerify<'_>, id: GuestId) -> ProbeResult {
    let start = Instant::now();
    let mesh: Vec<IpAddr> = v.d.dns.listen.clone();
    let shown: Vec<String> = mesh.iter().map(ToString::to_string).collect();
    let check = format!(
        "/etc/resolv.conf names the mesh DNS [{}] (pct exec in container {id})",
        shown.join(", ")
    );
    let r = match run_in(v, id, &["cat", "/etc/resolv.conf"]) {
        Err(e) => Err(format!("pct exec {id} failed: {e}")),
        Ok((st, _, err)) if st != 0 => {
            Err(format!("cat /etc/resolv.conf exited {st}: {}", err.trim()))
        }
        Ok((_, text, _)) => {
            let servers: Vec<IpAddr> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .filter_map(|a| a.trim().parse().ok())
                .collect();
            let listed: Vec<String> = servers.iter().map(ToString::to_string).collect();
            let listed = format!("nameservers [{}]", listed.join(", "));
            if servers.iter().any(|a| mesh.contains(a)) {
                Ok(listed)
            } else {
                Err(format!(
                    "{listed}; none is a mesh DNS server [{}]",
                    shown.join(", ")
                ))
            }
        }
    };
    result(format!("dns/guest:{id}/resolver"), id, check, r, start)
}

/// The addresses `getent ahosts` printed (first column of each line).
pub fn getent_addresses(stdout: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for a in stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|a| a.parse().ok())
    {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Pass/fail of one `getent ahosts` run (exit 2: not found; 127: no `getent` in the guest).
pub fn judge(expect: &DnsExpect, ran: Ran) -> Result<String, String> {
    let (status, stdout, stderr) = ran.map_err(|e| format!("pct exec failed: {e}"))?;
    let found = getent_addresses(&stdout);
    let shown = found
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match (expect, status) {
        (_, 127) => Err(format!("no getent in the guest: {}", stderr.trim())),
        (DnsExpect::Address(a), 0) if found.contains(a) => Ok(format!("[{shown}]")),
        (DnsExpect::Address(a), 0) => Err(format!("resolved to [{shown}], not {a}")),
        (DnsExpect::Address(_), 2) => Err("not found (getent exit 2)".into()),
        (DnsExpect::NxDomain, 2) => Ok("not found".into()),
        (DnsExpect::NxDomain, 0) => Err(format!("an unknown name resolved to [{shown}]")),
        (_, st) => Err(format!("getent exited {st}: {}", stderr.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn getent_output_is_read_by_its_first_column() {
        let out = "172.16.100.11   STREAM portainer.internal.example\n172.16.100.11   DGRAM\n\
                   172.16.100.11   RAW\nfd00::11        STREAM\n";
        assert_eq!(
            getent_addresses(out),
            vec![ip("172.16.100.11"), ip("fd00::11")]
        );
    }

    #[test]
    fn exit_codes_decide_the_outcome() {
        let want = DnsExpect::Address(ip("10.0.0.5"));
        let ok = |s: &str| Ok((0, s.to_string(), String::new()));
        assert!(judge(&want, ok("10.0.0.5 STREAM a\n")).is_ok());
        let wrong = judge(&want, ok("10.0.0.6 STREAM a\n"));
        assert_eq!(wrong, Err("resolved to [10.0.0.6], not 10.0.0.5".into()));
        assert!(judge(&want, Ok((2, String::new(), String::new()))).is_err());
        assert!(judge(&DnsExpect::NxDomain, Ok((2, String::new(), String::new()))).is_ok());
        assert!(judge(&DnsExpect::NxDomain, ok("10.0.0.9 STREAM x\n")).is_err());
        let missing = judge(&want, Ok((127, String::new(), "getent: not found".into())));
        assert!(missing.is_err_and(|e| e.contains("no getent")));
    }
}
