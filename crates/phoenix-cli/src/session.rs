//! A connected Proxmox VE node for the commands that reach one (`sync`, `apply`, `status`,
//! the network switch): the configuration, the API client from flags / `PROXMOX_VE_*` / the
//! configuration's `proxmox_api`, and the node's host shell (local root or OpenSSH).

use std::io::Write;

use phoenix_exec::LocalShell;
use phoenix_pve::{ConnectionFlags, ConnectionSettings, PveClient};
use phoenix_render::RenderOptions;

use crate::cli::PveConnArgs;
use crate::failure::error;
use crate::{config, exit};

/// A connected node: the configuration, the API client and the node's host shell.
pub(crate) struct PveSession {
    pub desired: phoenix_model::DesiredState,
    pub client: PveClient,
    /// The node's host shell: this machine (`--host-root`) or OpenSSH (`--ssh`).
    pub shell: Box<dyn phoenix_pve::HostShell>,
    pub opts: RenderOptions,
}

/// The connection flags of the command line.
pub(crate) fn connection_flags(pve: &PveConnArgs) -> ConnectionFlags {
    ConnectionFlags {
        endpoint: pve.endpoint.clone(),
        api_token: pve.api_token.clone(),
        node: pve.node.clone(),
        ca_file: pve.ca_file.clone(),
        fingerprint: pve.fingerprint.clone(),
        insecure: pve.insecure_skip_tls_verify,
        username: pve.username.clone(),
        password_file: pve.password_file.clone(),
    }
}

/// Load the configuration and connect (settings from flags, else `PROXMOX_VE_*`).
pub(crate) fn connect(config: &std::path::Path, pve: &PveConnArgs) -> Result<PveSession, u8> {
    let desired = config::load(config)?;
    let flags = connection_flags(pve);
    // Flags first, then `PROXMOX_VE_*`, then what the configuration names (`proxmox_api`).
    let credentials_given = flags.api_token.is_some()
        || flags.username.is_some()
        || flags.password_file.is_some()
        || [
            phoenix_pve::connection::ENV_API_TOKEN,
            phoenix_pve::connection::ENV_USERNAME,
            phoenix_pve::connection::ENV_PASSWORD,
            phoenix_pve::connection::ENV_PASSWORD_FILE,
        ]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()));
    let defaults = match config::pve_defaults(&desired, credentials_given) {
        Ok(d) => d,
        Err(e) => {
            error(
                &e,
                "set the environment variable or file the configuration's proxmox_api names",
            );
            return Err(exit::USAGE);
        }
    };
    let env = |k: &str| std::env::var(k).ok().or_else(|| defaults.get(k).cloned());
    let settings = match ConnectionSettings::resolve(&flags, env) {
        Ok(s) => s,
        Err(e) => {
            error(
                &e.to_string(),
                "pass --endpoint/--node, --api-token or --username with $PROXMOX_VE_PASSWORD/--password-file, and --ca-file or --fingerprint, or set PROXMOX_VE_*",
            );
            return Err(exit::USAGE);
        }
    };
    if matches!(settings.trust, phoenix_pve::TlsTrust::InsecureAcceptAny) {
        let _ = writeln!(
            anstream::stderr(),
            "warning: TLS certificate verification is OFF (--insecure-skip-tls-verify): anyone on the path can read the credentials"
        );
    }
    let mut client = match PveClient::new(&settings) {
        Ok(c) => c,
        Err(e) => {
            error(&e.to_string(), "check the CA file or fingerprint");
            return Err(exit::USAGE);
        }
    };
    client.request_timeout = std::time::Duration::from_secs(pve.request_timeout);
    client.task.deadline = std::time::Duration::from_secs(pve.task_deadline);
    if let Err(e @ phoenix_pve::PveError::Login { .. }) = client.login() {
        error(
            &e.to_string(),
            "check the username and password, or use an API token",
        );
        return Err(exit::USAGE);
    }
    let shell = host_shell(
        pve.host_root.as_ref(),
        pve.ssh.as_ref(),
        pve.ssh_port,
        pve.ssh_identity.as_ref(),
        pve.ssh_known_hosts.as_ref(),
    );
    Ok(PveSession {
        desired,
        client,
        shell,
        opts: RenderOptions {
            node: settings.node.clone(),
        },
    })
}

/// The node's host shell: OpenSSH to `ssh` (paths under `root` there), else this machine
/// under `root` (default `/`).
pub(crate) fn host_shell(
    root: Option<&std::path::PathBuf>,
    ssh: Option<&String>,
    port: Option<u16>,
    identity: Option<&std::path::PathBuf>,
    known_hosts: Option<&std::path::PathBuf>,
) -> Box<dyn phoenix_pve::HostShell> {
    match ssh {
        Some(destination) => {
            let mut shell = phoenix_exec::SshShell::new(destination.clone());
            shell.port = port;
            shell.identity = identity.cloned();
            shell.known_hosts = known_hosts.cloned();
            shell.root = root.map(|r| r.display().to_string());
            Box::new(shell)
        }
        None => Box::new(LocalShell::new(root.cloned().unwrap_or_else(|| "/".into()))),
    }
}
