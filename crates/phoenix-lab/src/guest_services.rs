//! Services inside lab guests, run only because the plan provisions them: a provision step
//! `service NAME` in guest G starts (or, when its files changed, restarts) the real program
//! in G's namespace, reading its files from G's root as the plan's earlier steps wrote them:
//! - `nginx`: nginx with the lab's main file including `<root>/etc/nginx/conf.d/*.conf`;
//! - `traefik`: Traefik with `<root>/etc/traefik/traefik.yml`;
//! - `step-ca`: step-ca with the lab CA's files ([`crate::stepca`]);
//! - `docker`: the guest's dockerd ([`crate::swarm::start_node`]).
//!
//! Any other service has no lab equivalent (said so). Records go to `services.json` like the
//! lab's own services, so `lab status`, `lab down` and `verify` find them. Root only.

use std::path::Path;
use std::sync::Mutex;

use phoenix_model::model::{DesiredState, GuestId};

use crate::ingress::{nginx_args, nginx_main};
use crate::roots::{guest_root, lab_ca, under};
use crate::services::{self, Listen, ServiceRecord, launch};
use crate::topology::{LabTopology, NsRole};
use crate::{LabError, state_dir};

/// `services.json` is read, changed and written by one service start at a time.
static RECORDS: Mutex<()> = Mutex::new(());

/// What [`ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Started (or restarted), with what the journal says.
    Started(String),
    /// Already running as wanted.
    Running,
    /// The lab cannot run it, and why.
    NotInLab(String),
}

fn err(reason: impl Into<String>) -> LabError {
    LabError::Provision(reason.into())
}

/// The namespace of guest `id`.
pub fn ns_of_guest(t: &LabTopology, id: GuestId) -> Option<String> {
    t.namespaces
        .iter()
        .find(|n| matches!(n.role, NsRole::Guest { id: g, .. } if g == id.0))
        .map(|n| n.name.clone())
}

/// The guest the configuration's gateway file goes to.
pub fn gateway_of(d: &DesiredState) -> Option<GuestId> {
    phoenix_render::nginx::gateway(d)
        .ok()
        .flatten()
        .and_then(|f| match f.target {
            phoenix_render::FileTarget::Guest(g) => Some(g),
            phoenix_render::FileTarget::Host => None,
        })
}

/// The lab's name for service `service` in guest `id` (its pid file, log and record).
pub fn record_name(d: &DesiredState, id: GuestId, service: &str) -> String {
    record_name_for(gateway_of(d) == Some(id), id, service)
}

/// [`record_name`] when it is known whether `id` is the gateway. Pure.
pub fn record_name_for(gateway: bool, id: GuestId, service: &str) -> String {
    match service {
        "nginx" if gateway => "nginx-gw".to_string(),
        "traefik" | "step-ca" => service.to_string(),
        _ => format!("{service}-{id}"),
    }
}

/// The record of a running lab service named `name`, if its process is alive.
pub fn running(prefix: &str, name: &str) -> Option<ServiceRecord> {
    let state = services::load(prefix)?;
    let rec = state.services.into_iter().find(|s| s.name == name)?;
    let pid = services::read_pid(&rec.pid_file)?;
    crate::teardown::pids_in(std::slice::from_ref(&rec.ns))
        .contains(&pid)
        .then_some(rec)
}

/// Add or replace `rec` in `services.json`.
fn record(prefix: &str, rec: ServiceRecord) -> Result<(), LabError> {
    let _guard = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
    let mut state = services::load(prefix).unwrap_or_default();
    state.services.retain(|s| s.name != rec.name);
    state.services.push(rec);
    services::save(prefix, &state)
}

/// Make service `service` run in guest `id`; `restart` when its files changed in this run.
pub fn ensure(
    d: &DesiredState,
    t: &LabTopology,
    id: GuestId,
    service: &str,
    restart: bool,
) -> Result<Started, LabError> {
    let Some(ns) = ns_of_guest(t, id) else {
        return Ok(Started::NotInLab(format!(
            "guest {id} has no namespace in the lab (a template, or not created)"
        )));
    };
    if service == "docker" {
        return crate::swarm::start_node(d, t, id.0, restart).map(|s| match s {
            Some(said) => Started::Started(said),
            None => Started::Running,
        });
    }
    let name = record_name(d, id, service);
    if let Some(rec) = running(&t.prefix, &name) {
        if !restart {
            return Ok(Started::Running);
        }
        services::restart(&t.prefix, &rec)?;
        return Ok(Started::Started(format!(
            "restarted {name} in {ns}: its files changed"
        )));
    }
    let dir = state_dir(&t.prefix);
    let root = guest_root(&t.prefix, id.0);
    stop_orphan(&dir, &name, &ns);
    let pending = match service {
        "nginx" => {
            let include = under(&root, "/etc/nginx/conf.d").join("*.conf");
            let ready: Vec<Listen> = nginx_ports(&under(&root, "/etc/nginx/conf.d"))
                .into_iter()
                .map(Listen::TcpPort)
                .collect();
            let conf = dir.join(format!("{name}.conf"));
            services::write(&conf, &nginx_main(&dir, &name, &include))?;
            let tmp = dir.join(format!("{name}-tmp"));
            std::fs::create_dir_all(&tmp).map_err(|e| LabError::io(&tmp, e))?;
            free(&ns, &ready);
            launch(
                &dir,
                &name,
                &ns,
                &nginx_args(&dir, &conf, &name),
                &format!("{name}.error.log"),
                ready,
            )?
        }
        "traefik" => {
            let file = under(&root, phoenix_render::traefik::STATIC_CONFIG_PATH);
            if !file.is_file() {
                return Err(err(format!(
                    "Traefik in guest {id}: no static configuration at {} (the plan writes it before the service starts)",
                    phoenix_render::traefik::STATIC_CONFIG_PATH
                )));
            }
            let bin = crate::traefik::traefik_binary()
                .ok_or_else(|| err(crate::peers::not_found(&crate::traefik::TRAEFIK)))?;
            let argv = vec![
                bin.to_string_lossy().into_owned(),
                format!("--configFile={}", file.to_string_lossy()),
            ];
            let ready: Vec<Listen> = traefik_port(d).map(Listen::TcpPort).into_iter().collect();
            free(&ns, &ready);
            launch(&dir, &name, &ns, &argv, "traefik.out", ready)?
        }
        "step-ca" => {
            let ca = lab_ca(d, &t.prefix)?;
            free(&ns, &[Listen::TcpPort(d.step_ca.port)]);
            match crate::stepca::prepare(d, t, &ca, &dir)? {
                crate::stepca::Outcome::NoCa => {
                    return Ok(Started::NotInLab(
                        "step-ca: the configuration has no CA guest with a mesh address".into(),
                    ));
                }
                crate::stepca::Outcome::Skipped(note) => return Ok(Started::NotInLab(note)),
                crate::stepca::Outcome::Started(s) => {
                    let s = *s;
                    s.pending.wait()?;
                    record(&t.prefix, s.pending.record.clone())?;
                    let text = serde_json::to_string_pretty(&s.state).map_err(LabError::State)?;
                    services::write(&dir.join(STEP_CA_FILE), &text)?;
                    return Ok(Started::Started(format!(
                        "started step-ca in {ns} ({})",
                        s.state.url
                    )));
                }
            }
        }
        other => {
            return Ok(Started::NotInLab(format!(
                "service {other}: the lab runs nginx, Traefik, step-ca and dockerd only (it never starts systemd units)"
            )));
        }
    };
    pending.wait()?;
    let said = format!("started {name} in {ns}");
    record(&t.prefix, pending.record)?;
    Ok(Started::Started(said))
}

/// The ports of `ready` freed from any stale listener in `ns` ([`services::free_ports`]).
fn free(ns: &str, ready: &[Listen]) {
    let ports: Vec<u16> = ready
        .iter()
        .map(|l| match l {
            Listen::Tcp(_, p) | Listen::Udp(_, p) | Listen::TcpPort(p) => *p,
        })
        .collect();
    services::free_ports(ns, &ports, std::time::Duration::from_secs(3));
}

/// A process of an earlier start of `name` that was never recorded (its run was killed
/// between the start and the record): its pid file names it; stopped when it is still alive
/// in `ns`, so the new one can take its sockets.
fn stop_orphan(dir: &Path, name: &str, ns: &str) {
    let Some(pid) = services::read_pid(&dir.join(format!("{name}.pid"))) else {
        return;
    };
    if !crate::teardown::pids_in(&[ns.to_string()]).contains(&pid) {
        return;
    }
    let _ = crate::run::output("kill", &["-TERM", "--", &pid.to_string()]);
    let start = std::time::Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists()
        && start.elapsed() < std::time::Duration::from_secs(3)
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Where the running step-ca of a lab is recorded.
pub const STEP_CA_FILE: &str = "step-ca.json";

/// The running step-ca of lab `prefix`, as recorded when it started.
pub fn step_ca(prefix: &str) -> Option<crate::stepca::StepCaState> {
    let text = std::fs::read_to_string(state_dir(prefix).join(STEP_CA_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Reload (nginx: HUP) or restart service `service` of guest `id` when it runs; `false`
/// when it does not run (it reads the new files when it starts).
pub fn reload(
    d: &DesiredState,
    t: &LabTopology,
    id: GuestId,
    service: &str,
) -> Result<bool, LabError> {
    reload_named(&t.prefix, &record_name(d, id, service), service == "nginx")
}

/// Reload the lab service recorded as `name` (`hup`: SIGHUP, else a restart); `false` when
/// it does not run.
pub fn reload_named(prefix: &str, name: &str, hup: bool) -> Result<bool, LabError> {
    let Some(rec) = running(prefix, name) else {
        return Ok(false);
    };
    match (hup, services::read_pid(&rec.pid_file)) {
        (true, Some(pid)) => {
            crate::run::run("kill", &["-HUP", "--", &pid.to_string()])?;
        }
        _ => services::restart(prefix, &rec)?,
    }
    Ok(true)
}

/// The TCP ports nginx's `listen` directives in `dir`'s `*.conf` files name.
fn nginx_ports(dir: &Path) -> Vec<u16> {
    let mut ports = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return ports;
    };
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for line in text.lines() {
            let mut w = line.split_whitespace();
            if w.next() != Some("listen") {
                continue;
            }
            let Some(addr) = w.next() else { continue };
            let addr = addr.trim_end_matches(';');
            let port = addr.rsplit(':').next().unwrap_or(addr);
            if let Ok(p) = port.parse::<u16>()
                && !ports.contains(&p)
            {
                ports.push(p);
            }
        }
    }
    ports.sort_unstable();
    ports
}

/// The port Traefik's entrypoint serves the gateway on (from the configuration's ingress).
fn traefik_port(d: &DesiredState) -> Option<u16> {
    let ing = phoenix_render::traefik::ingress::ingress(d).ok()?;
    let upstream = phoenix_render::nginx::upstream(d, &ing).ok()?;
    upstream
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nginx_ports_from_listen_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join("a.conf"),
            "server {\n    listen 443 ssl;\n    listen [::]:443 ssl;\n}\nserver {\n  listen 10.0.0.1:80;\n}\n",
        )
        .unwrap();
        assert_eq!(nginx_ports(dir), vec![80, 443]);
    }
}
