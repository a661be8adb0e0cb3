//! Where the node fetches a VM template's cloud image: `template_image_url` and its checksum.
//! Types and their pure checks; no I/O.

use serde::Serialize;

/// A cloud image the node downloads itself (`download-url`) before importing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSource {
    /// `http(s)://…`, as the operator wrote it.
    pub url: String,
    /// Checked by the node after the download; `None`: not verified.
    pub checksum: Option<ImageChecksum>,
}

/// A checksum Proxmox's `download-url` verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChecksum {
    /// One of [`ALGORITHMS`].
    pub algorithm: String,
    /// Lower-case hex.
    pub value: String,
}

/// `checksum-algorithm` values `download-url` accepts, with their digest length in hex digits.
pub const ALGORITHMS: [(&str, usize); 6] = [
    ("md5", 32),
    ("sha1", 40),
    ("sha224", 56),
    ("sha256", 64),
    ("sha384", 96),
    ("sha512", 128),
];

/// The algorithm used when a checksum names none.
pub const DEFAULT_ALGORITHM: &str = "sha256";

/// An image URL: `http://` or `https://`, no spaces or control characters (it reaches the
/// API as one form value, never a shell).
pub fn url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        None => Err(format!("`{s}` is not an http:// or https:// URL")),
        Some("") => Err("the URL names no host".into()),
        Some(_) if s.len() > 2048 => Err("the URL is longer than 2048 characters".into()),
        Some(_) if s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err("the URL contains spaces or control characters".into())
        }
        Some(_) => Ok(()),
    }
}

/// A checksum for `algorithm`: known algorithm, hex digits of its length. Returns the value
/// in lower case.
pub fn checksum(algorithm: &str, value: &str) -> Result<String, String> {
    let Some((_, len)) = ALGORITHMS.iter().find(|(a, _)| *a == algorithm) else {
        let names: Vec<&str> = ALGORITHMS.iter().map(|(a, _)| *a).collect();
        return Err(format!(
            "`{algorithm}` is not a checksum algorithm Proxmox verifies ({})",
            names.join(", ")
        ));
    };
    if value.len() != *len || !value.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "a {algorithm} checksum is {len} hex digits; `{value}` is not"
        ));
    }
    Ok(value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls() {
        assert!(url("https://cloud-images.ubuntu.com/noble/current/x.img").is_ok());
        assert!(url("http://10.0.0.5/x.img").is_ok());
        assert!(url("ftp://x/y").is_err());
        assert!(url("https://").is_err());
        assert!(url("https://x/a b.img").is_err());
    }

    #[test]
    fn checksums() {
        let sha = "A".repeat(64);
        assert_eq!(checksum("sha256", &sha).unwrap(), "a".repeat(64));
        assert!(checksum("sha256", &"a".repeat(63)).is_err());
        assert!(checksum("sha256", &"g".repeat(64)).is_err());
        assert!(checksum("crc32", "abcd").is_err());
        assert!(checksum("md5", &"0".repeat(32)).is_ok());
    }
}
