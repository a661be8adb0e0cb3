//! After a VM with phoenix's vendor data starts: wait for its guest agent (`agent/ping`), then
//! for cloud-init to finish (`cloud-init status --wait` through the agent), each within a
//! deadline, with progress on the log. Does network I/O.

use std::time::{Duration, Instant};

use phoenix_exec::guest::GuestExec;
use phoenix_model::model::GuestId;

use crate::client::PveClient;
use crate::error::PveError;
use crate::guestexec::QemuAgentExec;

/// How long a freshly started VM may take until its agent answers (first boot installs it).
pub const AGENT_BOOT_DEADLINE: Duration = Duration::from_secs(600);
/// How long cloud-init may take after the agent answers.
pub const CLOUD_INIT_DEADLINE: Duration = Duration::from_secs(900);

/// Wait for VM `id`'s agent, then for cloud-init; an error names which and how long.
pub fn wait_agent_and_cloud_init(
    client: &PveClient,
    node: &str,
    id: GuestId,
) -> Result<(), PveError> {
    let started = Instant::now();
    tracing::info!(guest = %id, deadline_s = AGENT_BOOT_DEADLINE.as_secs(), "waiting for the guest agent");
    let mut exec = QemuAgentExec::new(client, node.to_string(), id);
    exec.wait_ready(AGENT_BOOT_DEADLINE)
        .map_err(|e| PveError::Provision {
            guest: id,
            message: format!(
                "guest agent did not answer within {} s ({e}); hint: the VM's console shows cloud-init installing qemu-guest-agent from its vendor snippet",
                AGENT_BOOT_DEADLINE.as_secs()
            ),
        })?;
    tracing::info!(guest = %id, after_s = started.elapsed().as_secs(), "guest agent answers; waiting for cloud-init");
    exec.deadline = CLOUD_INIT_DEADLINE;
    let argv: Vec<String> = ["cloud-init", "status", "--wait"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = exec.run(&argv).map_err(|e| PveError::Provision {
        guest: id,
        message: format!("cloud-init status --wait: {e}"),
    })?;
    match out.status {
        0 => {}
        // cloud-init ≥ 23.4: done, with recoverable errors (deprecations and the like).
        2 => tracing::warn!(guest = %id, "cloud-init finished with recoverable errors"),
        status => {
            return Err(PveError::Provision {
                guest: id,
                message: format!(
                    "cloud-init failed (exit {status}): {}; hint: `cloud-init status --long` inside the VM",
                    out.stdout.trim()
                ),
            });
        }
    }
    tracing::info!(guest = %id, after_s = started.elapsed().as_secs(), "cloud-init done");
    Ok(())
}
