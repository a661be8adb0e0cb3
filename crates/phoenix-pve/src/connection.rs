//! Connection settings: endpoint, API token, node and TLS trust, from explicit values or the
//! environment names Terraform's Proxmox provider users know (`PROXMOX_VE_*`). No I/O: the
//! environment is read through a closure so tests never touch the process environment.

use std::fmt;
use std::path::PathBuf;

use crate::error::PveError;
use crate::tls::{TlsTrust, parse_fingerprint};

pub const ENV_ENDPOINT: &str = "PROXMOX_VE_ENDPOINT";
pub const ENV_API_TOKEN: &str = "PROXMOX_VE_API_TOKEN";
pub const ENV_NODE: &str = "PROXMOX_VE_NODE";
pub const ENV_CA_FILE: &str = "PROXMOX_VE_CA_FILE";
pub const ENV_FINGERPRINT: &str = "PROXMOX_VE_FINGERPRINT";

/// An API token `user@realm!tokenid=secret`. `Debug` and `Display` show only the token id.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// `user@realm!tokenid`.
    id: String,
    secret: String,
}

impl ApiToken {
    /// Parse and validate `user@realm!tokenid=secret`. The error never contains the secret.
    pub fn parse(text: &str) -> Result<ApiToken, PveError> {
        let bad = |message: &str| PveError::Setting {
            name: ENV_API_TOKEN.into(),
            message: format!("{message} (expected user@realm!tokenid=secret)"),
        };
        let (id, secret) = text.split_once('=').ok_or_else(|| bad("no '=secret'"))?;
        let (user, token) = id.split_once('!').ok_or_else(|| bad("no '!tokenid'"))?;
        let (name, realm) = user.split_once('@').ok_or_else(|| bad("no '@realm'"))?;
        let word = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if name.is_empty() || name.contains(['!', '=', ':']) || !word(realm) {
            return Err(bad("malformed user@realm"));
        }
        if !word(token) || !token.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(bad("malformed token id"));
        }
        if secret.is_empty() || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("empty or malformed secret"));
        }
        Ok(ApiToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// `user@realm!tokenid` (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `Authorization` header value. Callers must mark the header sensitive.
    pub(crate) fn header_value(&self) -> String {
        format!("PVEAPIToken={}={}", self.id, self.secret)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({}=<redacted>)", self.id)
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=<redacted>", self.id)
    }
}

/// Everything needed to talk to one node.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// `https://host:8006` (a trailing `/` or `/api2/json` is accepted and removed).
    pub endpoint: String,
    pub token: ApiToken,
    pub node: String,
    pub trust: TlsTrust,
}

/// Raw values as flags give them; `None` falls back to the environment.
#[derive(Clone, Default)]
pub struct ConnectionFlags {
    pub endpoint: Option<String>,
    /// `user@realm!tokenid=secret`, unvalidated; redacted in `Debug`.
    pub api_token: Option<String>,
    pub node: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub fingerprint: Option<String>,
    pub insecure: bool,
}

impl fmt::Debug for ConnectionFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionFlags")
            .field("endpoint", &self.endpoint)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("node", &self.node)
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl ConnectionSettings {
    /// Resolve flags, falling back to `env(NAME)` for each missing value.
    pub fn resolve(
        flags: &ConnectionFlags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnectionSettings, PveError> {
        let pick = |flag: &Option<String>, name: &str| {
            flag.clone()
                .or_else(|| env(name))
                .filter(|v| !v.trim().is_empty())
        };
        let missing = |name: &str| PveError::Setting {
            name: name.into(),
            message: "not set".into(),
        };
        let endpoint = pick(&flags.endpoint, ENV_ENDPOINT).ok_or_else(|| missing(ENV_ENDPOINT))?;
        let endpoint = normalize_endpoint(&endpoint)?;
        let token = pick(&flags.api_token, ENV_API_TOKEN).ok_or_else(|| missing(ENV_API_TOKEN))?;
        let token = ApiToken::parse(&token)?;
        let node = pick(&flags.node, ENV_NODE).ok_or_else(|| missing(ENV_NODE))?;
        let ca_file = flags.ca_file.clone().or_else(|| {
            env(ENV_CA_FILE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let fingerprint = pick(&flags.fingerprint, ENV_FINGERPRINT);
        let trust = match (ca_file, fingerprint, flags.insecure) {
            (Some(_), Some(_), _) => {
                return Err(PveError::Setting {
                    name: ENV_FINGERPRINT.into(),
                    message: format!("give either {ENV_CA_FILE} or {ENV_FINGERPRINT}, not both"),
                });
            }
            (Some(path), None, _) => TlsTrust::CaFile(path),
            (None, Some(fp), _) => {
                TlsTrust::Fingerprint(parse_fingerprint(&fp).ok_or_else(|| PveError::Setting {
                    name: ENV_FINGERPRINT.into(),
                    message: "expected 32 hex bytes (AA:BB:…)".into(),
                })?)
            }
            (None, None, true) => TlsTrust::InsecureAcceptAny,
            (None, None, false) => {
                return Err(PveError::Setting {
                    name: ENV_CA_FILE.into(),
                    message: format!(
                        "no TLS trust: set {ENV_CA_FILE} or {ENV_FINGERPRINT} (or pass the \
                         explicit insecure option)"
                    ),
                });
            }
        };
        Ok(ConnectionSettings {
            endpoint,
            token,
            node,
            trust,
        })
    }
}

fn normalize_endpoint(text: &str) -> Result<String, PveError> {
    let trimmed = text.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/api2/json").unwrap_or(trimmed);
    if !trimmed.starts_with("https://") || trimmed.len() <= "https://".len() {
        return Err(PveError::Setting {
            name: ENV_ENDPOINT.into(),
            message: format!("{trimmed:?} is not an https:// URL"),
        });
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn token_parses_and_redacts() {
        let t = ApiToken::parse("root@pam!phoenix=s3cr3t-value").unwrap();
        assert_eq!(t.id(), "root@pam!phoenix");
        assert!(!format!("{t:?}").contains("s3cr3t"));
        assert!(!format!("{t}").contains("s3cr3t"));
        for bad in [
            "root@pam!phoenix",
            "root!x=s",
            "root@pam=s",
            "@pam!x=s",
            "root@pam!x=",
        ] {
            let err = ApiToken::parse(bad).unwrap_err();
            assert!(matches!(err, PveError::Setting { .. }), "{bad}");
        }
        let err = ApiToken::parse("root@pam!1bad=s3cr3t-value").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
        let flags = ConnectionFlags {
            api_token: Some("root@pam!phoenix=s3cr3t-value".into()),
            ..Default::default()
        };
        assert!(!format!("{flags:?}").contains("s3cr3t"));
        let settings = ConnectionSettings {
            endpoint: "https://pve:8006".into(),
            token: t,
            node: "pve1".into(),
            trust: TlsTrust::InsecureAcceptAny,
        };
        assert!(!format!("{settings:?}").contains("s3cr3t"));
    }

    #[test]
    fn settings_from_env_and_flags() {
        let fp = format!("{}AB", "AB:".repeat(31));
        let env = env_of(&[
            (ENV_ENDPOINT, "https://pve.example:8006/api2/json/"),
            (ENV_API_TOKEN, "root@pam!phoenix=abc"),
            (ENV_NODE, "pve1"),
            (ENV_FINGERPRINT, &fp),
        ]);
        let s = ConnectionSettings::resolve(&ConnectionFlags::default(), &env).unwrap();
        assert_eq!(s.endpoint, "https://pve.example:8006");
        assert!(matches!(s.trust, TlsTrust::Fingerprint(_)));
        let flags = ConnectionFlags {
            node: Some("pve2".into()),
            ..Default::default()
        };
        assert_eq!(
            ConnectionSettings::resolve(&flags, &env).unwrap().node,
            "pve2"
        );
    }

    #[test]
    fn settings_require_trust_and_https() {
        let base = [
            (ENV_ENDPOINT, "https://pve:8006"),
            (ENV_API_TOKEN, "root@pam!p=abc"),
            (ENV_NODE, "pve1"),
        ];
        let err = ConnectionSettings::resolve(&ConnectionFlags::default(), env_of(&base));
        assert!(matches!(err, Err(PveError::Setting { name, .. }) if name == ENV_CA_FILE));
        let insecure = ConnectionFlags {
            insecure: true,
            ..Default::default()
        };
        let s = ConnectionSettings::resolve(&insecure, env_of(&base)).unwrap();
        assert_eq!(s.trust, TlsTrust::InsecureAcceptAny);
        let plain = ConnectionFlags {
            endpoint: Some("http://pve:8006".into()),
            insecure: true,
            ..Default::default()
        };
        assert!(ConnectionSettings::resolve(&plain, env_of(&base)).is_err());
    }
}
