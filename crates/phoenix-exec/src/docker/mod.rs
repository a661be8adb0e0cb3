//! The Docker Engine API as phoenix drives a Swarm, on whatever engines a target has (the lab's
//! unix sockets, a Proxmox node's VMs over TCP + TLS 2376): clients ([`connect_unix`],
//! [`connect_tls`]), Swarm membership ([`members`]), stacks ([`stack`]) and observation
//! ([`observe`]). I/O: the Engine API (bollard, a current-thread runtime per operation).

use std::path::Path;

use bollard::errors::Error as ApiError;
use bollard::{ClientVersion, Docker};
use sha2::{Digest, Sha256};

pub mod client_cert;
pub mod members;
pub mod observe;
pub mod stack;
pub mod versions;

/// Swarm's cluster-management port.
pub const MANAGER_PORT: u16 = 2377;
/// The Engine API over TCP + TLS (`dockerd --tlsverify -H tcp://ADDR:2376`).
pub const ENGINE_TLS_PORT: u16 = 2376;
/// Docker's `DOCKER_CERT_PATH` layout.
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";
/// The Engine API of Debian's docker.io 20.10 (bollard's default is newer than it accepts).
pub const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};
/// Per-request timeout of the Engine API client, seconds.
pub const API_TIMEOUT_S: u64 = 60;

/// What went wrong talking to the engines (join tokens and secret values never appear).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DockerError(pub String);

pub(crate) fn err(reason: impl Into<String>) -> DockerError {
    DockerError(reason.into())
}

/// A current-thread runtime for the Engine API calls of one operation.
pub fn runtime() -> Result<tokio::runtime::Runtime, DockerError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("cannot start the async runtime: {e}")))
}

/// Is `e` the engine's 404?
pub fn is_not_found(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// An Engine API client for the unix socket at `socket`. No connection is made yet.
pub fn connect_unix(socket: &Path) -> Result<Docker, DockerError> {
    Docker::connect_with_unix(&socket.to_string_lossy(), API_TIMEOUT_S, &API_VERSION)
        .map_err(|e| err(format!("{}: {e}", socket.display())))
}

/// An Engine API client for `endpoint` (`tcp://host:port` or `host:port`) with the
/// certificate files in `dir` (`ca.pem`, `cert.pem`, `key.pem`). No connection is made yet.
///
/// Known limitation: bollard's `connect_with_ssl` trusts the system's native roots *besides*
/// `ca.pem` (it has no option to trust only the given CA). The endpoint is a private mesh
/// address whose certificate must carry that IP as a SAN, which no public CA issues.
pub fn connect_tls(endpoint: &str, dir: &Path) -> Result<Docker, DockerError> {
    for f in [CA_FILE, CERT_FILE, KEY_FILE] {
        let path = dir.join(f);
        if !path.is_file() {
            return Err(err(format!(
                "Engine API over TLS: missing {}",
                path.display()
            )));
        }
    }
    let addr = endpoint.strip_prefix("tcp://").unwrap_or(endpoint);
    Docker::connect_with_ssl(
        addr,
        &dir.join(KEY_FILE),
        &dir.join(CERT_FILE),
        &dir.join(CA_FILE),
        API_TIMEOUT_S,
        &API_VERSION,
    )
    .map_err(|e| err(format!("Engine API over TLS at {endpoint}: {e}")))
}

/// An error with its causes (`a: b: c`), the innermost being the TLS alert when there is one.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    parts.join(": ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `data`, lower-case hex. Pure.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// `<base>-<first 12 hex of the content's SHA-256>`: the name of an immutable object. Pure.
pub fn versioned_name(base: &str, content: &[u8]) -> String {
    format!("{base}-{}", &sha256_hex(content)[..12])
}

/// Standard base64 with padding (what the Engine API wants for secret and config data). Pure.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }
}
