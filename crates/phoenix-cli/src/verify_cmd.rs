//! `phoenix verify --target lab` (`--target pve`: [`crate::verify_pve`]): maps the running lab's recorded state (`phoenix-lab`) to the
//! places the probes need and prints `phoenix-verify`'s report. The checks themselves live in
//! `phoenix_verify::lab`. Root only. Report on stdout (text table ending in the count line, or
//! JSON); timing and errors on stderr; exit 1 on any failed check.

use std::io::Write;
use std::time::Instant;

use phoenix_verify::lab::{Deadlines, plan, verify};

use crate::cli::{OutputFormat, VerifyArgs, VerifyTarget};
use crate::{config, exit};

fn error(msg: &str, hint: &str) -> u8 {
    crate::failure::error(msg, hint);
    exit::FAILED
}

pub fn run(args: &VerifyArgs) -> u8 {
    match args.target {
        VerifyTarget::Lab => lab(args),
        VerifyTarget::Pve => crate::verify_pve::run(args),
    }
}

fn lab(args: &VerifyArgs) -> u8 {
    if !phoenix_exec::root::is_root() {
        return error(
            "`phoenix verify --target lab` must run as root (it enters the lab's network namespaces)",
            "run it with sudo, as `phoenix lab up` was",
        );
    }
    let prefix = args.prefix.prefix.as_str();
    if let Err(e) = phoenix_lab::validate_prefix(prefix) {
        return error(&e.to_string(), "prefixes are 1-6 characters of [a-z0-9]");
    }
    let d = match config::load(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let progress = crate::progress::Progress::new();
    progress.step(format!(
        "verifying lab {prefix}: DHCP, DNS, NAT, firewall matrix, TLS, route, Swarm"
    ));
    let verified = lab_report(&d, prefix, &args.config);
    progress.finish();
    let (report, took) = match verified {
        Ok(r) => r,
        Err((msg, hint)) => return error(&msg, &hint),
    };
    let body = match args.output {
        OutputFormat::Json => match crate::jsonout::print("verify", &report) {
            Ok(()) => String::new(),
            Err(e) => return error(&format!("cannot write the report: {e}"), "a bug"),
        },
        OutputFormat::Text => report.render_text_with(&crate::verify_text::options(args)),
    };
    let _ = write!(std::io::stdout(), "{body}");
    let _ = writeln!(
        anstream::stderr(),
        "verify lab {prefix}: {} checks in {} ms",
        report.results.len(),
        took.as_millis()
    );
    if report.ok() { exit::OK } else { exit::FAILED }
}

/// Run the lab checks of `d` against the running lab `prefix` (root). Errors carry a hint.
pub fn lab_report(
    d: &phoenix_model::DesiredState,
    prefix: &str,
    config: &std::path::Path,
) -> Result<(phoenix_verify::report::Report, std::time::Duration), (String, String)> {
    let Some(t) = phoenix_lab::status::load_state(prefix) else {
        return Err((
            format!("no lab `{prefix}` is up (no recorded state)"),
            format!(
                "start it with `phoenix sync all --target lab --config {} --prefix {prefix}`",
                config.display()
            ),
        ));
    };
    let places = phoenix_lab::status::verify_places(prefix, &t);
    let mut p = plan(d, &places);
    // Traefik's access log (JSON in the lab: `phoenix_lab::traefik::with_json_access_log`):
    // a broken route's cause then says which Host Traefik received.
    // The gateway nginx's error log (`phoenix_lab::ingress::nginx_main`): why it answered 502.
    let dir = phoenix_lab::state_dir(prefix);
    let traefik_log = dir.join("traefik.out");
    if traefik_log.is_file() {
        p.proxy_access_log = Some(traefik_log);
    }
    let gateway_log = dir.join("nginx-gw.error.log");
    if gateway_log.is_file() {
        p.gateway_error_log = Some(gateway_log);
    }
    let start = Instant::now();
    // The Swarm's checks and the network as the lab built it (links up, addresses, routes,
    // resolv.conf, the NAT: what `sync all` repairs in place) run beside the probes (they
    // share nothing but the clock).
    let (mut report, swarm, built) = std::thread::scope(|s| {
        let swarm = s.spawn(|| swarm_results(d, &t));
        let built = s.spawn(|| phoenix_lab::drift::checks(&t));
        let report = verify(&p, &Deadlines::default());
        (
            report,
            swarm.join().unwrap_or_default(),
            built.join().unwrap_or_default(),
        )
    });
    report.extend(swarm);
    report.extend(built);
    Ok((report, start.elapsed()))
}

/// The Swarm checks (`phoenix_lab::swarm::checks`) as report lines; a skip when the model has
/// Swarm VMs but this machine has no `dockerd`, nothing when it has none.
fn swarm_results(
    d: &phoenix_model::DesiredState,
    t: &phoenix_lab::LabTopology,
) -> Vec<phoenix_verify::report::ProbeResult> {
    use phoenix_verify::report::{ProbeResult, Status, Subject};
    let plan = match phoenix_lab::swarm::plan(d, t) {
        Ok(Some(p)) => p,
        Ok(None) => return Vec::new(),
        Err(e) => {
            return vec![ProbeResult::skip(
                "swarm".into(),
                Subject::Named("swarm".into()),
                "swarm".into(),
                e.to_string(),
            )];
        }
    };
    if !phoenix_lab::swarm::dockerd_available() {
        let mut out = swarm_policy(d);
        out.push(ProbeResult::skip(
            "swarm".into(),
            Subject::Named("swarm".into()),
            format!("swarm of {} nodes", plan.nodes.len()),
            "no dockerd on this machine (scripts/setup.sh installs Debian's docker.io)".into(),
        ));
        return out;
    }
    let mut checks = phoenix_lab::swarm::checks(&plan);
    // The stand-in stack (the lab's Portainer service): its replica runs, its port answers.
    if let Some(si) = phoenix_lab::ingress::swarm_stand_in(&t.prefix) {
        checks.push(phoenix_lab::swarm::service::stand_in_running_on(
            &plan, si.guest, si.port,
        ));
    }
    // The nodes' Engine API over TLS, from the hypervisor (how phoenix manages the Swarm).
    checks.extend(phoenix_lab::swarm::tls::check(&plan, &t.prefix, &t.hv));
    let mut out: Vec<ProbeResult> = swarm_policy(d);
    out.extend(stack_replicas(d, &plan));
    out.extend(checks.into_iter().map(|c| ProbeResult {
        id: c.id,
        subject: Subject::Named(c.subject),
        check: c.check,
        status: if c.pass {
            Status::Pass
        } else {
            Status::Fail {
                evidence: c.observed.clone(),
            }
        },
        observed: c.observed,
        duration: std::time::Duration::from_millis(u64::try_from(c.duration_ms).unwrap_or(0)),
    }));
    out
}

/// `swarm/stack/<namespace>`: every service of each deployed stack of the model has all its
/// replicas running. A stack the lab has not deployed gets no line: the lab serves the
/// Portainer route with its stand-in service (checked as `swarm/service/…`), and
/// `phoenix swarm status` lists what is not deployed.
fn stack_replicas(
    d: &phoenix_model::DesiredState,
    plan: &phoenix_lab::swarm::SwarmPlan,
) -> Vec<phoenix_verify::report::ProbeResult> {
    use phoenix_verify::report::{ProbeResult, Status, Subject};
    let Some(desired) = phoenix_plan::swarm::desired(d) else {
        return Vec::new();
    };
    let client = plan.leader().map(phoenix_lab::swarm::client);
    desired
        .stacks
        .iter()
        .filter_map(|s| {
            let start = std::time::Instant::now();
            let id = format!("swarm/stack/{}", s.namespace);
            let check = format!(
                "every service of stack {} has its replicas running",
                s.namespace
            );
            let subject = Subject::Named(s.manager.clone());
            let listed = match &client {
                Some(Ok(c)) => phoenix_exec::docker::stack::replicas(c, &s.namespace)
                    .map_err(|e| e.to_string()),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("no manager".into()),
            };
            let (status, observed) = match listed {
                Ok(l) if l.is_empty() => return None,
                Ok(l) => {
                    let shown: Vec<String> =
                        l.iter().map(|(n, r, w)| format!("{n} {r}/{w}")).collect();
                    let observed = shown.join(", ");
                    if l.iter().all(|(_, r, w)| r == w && *w > 0) {
                        (Status::Pass, observed)
                    } else {
                        (
                            Status::Fail {
                                evidence: observed.clone(),
                            },
                            observed,
                        )
                    }
                }
                Err(e) => (
                    Status::Fail {
                        evidence: e.clone(),
                    },
                    e,
                ),
            };
            Some(ProbeResult {
                id,
                subject,
                check,
                status,
                observed,
                duration: start.elapsed(),
            })
        })
        .collect()
}

/// `swarm/firewall/<from>-<to>/<port>/<proto>`: the ports Swarm needs between its nodes are
/// admitted by the firewall intent (pure; the overlay checks probe the real thing).
fn swarm_policy(d: &phoenix_model::DesiredState) -> Vec<phoenix_verify::report::ProbeResult> {
    use phoenix_verify::report::{ProbeResult, Status, Subject};
    phoenix_verify::matrix::swarm_ports(d)
        .into_iter()
        .map(|p| {
            let observed = format!(
                "{} → {}:{}/{}: {}",
                p.from_addr,
                p.addr,
                p.port,
                p.proto,
                match p.admitted {
                    Some(true) => format!("admitted ({})", p.why),
                    Some(false) => format!("denied ({})", p.why),
                    None => p.why.clone(),
                }
            );
            ProbeResult {
                id: format!(
                    "swarm/firewall/{}-{}/{}/{}",
                    p.from.0, p.to.0, p.port, p.proto
                ),
                subject: Subject::Guest(p.to),
                check: format!(
                    "the firewall policy admits Swarm's {}/{} from guest {}",
                    p.port, p.proto, p.from.0
                ),
                status: if p.admitted == Some(true) {
                    Status::Pass
                } else {
                    Status::Fail {
                        evidence: observed.clone(),
                    }
                },
                observed,
                duration: std::time::Duration::ZERO,
            }
        })
        .collect()
}
