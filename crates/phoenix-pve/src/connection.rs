//! Connection settings: endpoint, credentials (API token, or username and password for a login
//! ticket), node and TLS trust, from explicit values or the environment names Terraform's
//! Proxmox provider users know (`PROXMOX_VE_*`). The environment is read through a closure so
//! tests never touch the process environment; the only I/O is reading a password file, and
//! [`ConnectionSettings::resolve_with`] takes that as a closure too.
//!
//! Credentials: exactly one of an API token (`PROXMOX_VE_API_TOKEN`) or a username
//! (`PROXMOX_VE_USERNAME`, `user@realm`) with a password (`PROXMOX_VE_PASSWORD`, or a password
//! file: the `password_file` flag or `PROXMOX_VE_PASSWORD_FILE`). Both kinds at once is an
//! error rather than a silent preference, so a forgotten exported variable never decides which
//! identity (and which permissions) a run uses. Each value is taken from its flag first, then
//! from the environment.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::PveError;
use crate::tls::{TlsTrust, parse_fingerprint};

pub const ENV_ENDPOINT: &str = "PROXMOX_VE_ENDPOINT";
pub const ENV_API_TOKEN: &str = "PROXMOX_VE_API_TOKEN";
pub const ENV_NODE: &str = "PROXMOX_VE_NODE";
pub const ENV_CA_FILE: &str = "PROXMOX_VE_CA_FILE";
pub const ENV_FINGERPRINT: &str = "PROXMOX_VE_FINGERPRINT";
/// `user@realm` for ticket (password) login, as Terraform's provider names it.
pub const ENV_USERNAME: &str = "PROXMOX_VE_USERNAME";
/// The password for ticket login, as Terraform's provider names it.
pub const ENV_PASSWORD: &str = "PROXMOX_VE_PASSWORD";
/// A file holding the password (phoenix's own name): its text without the final line break.
pub const ENV_PASSWORD_FILE: &str = "PROXMOX_VE_PASSWORD_FILE";

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

/// A login password. `Debug` and `Display` show only `<redacted>`; the text is reachable only
/// inside the crate (the login form).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Password {
        Password(text.into())
    }

    /// The text, for the login form only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the client authenticates. `Debug` never shows a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PveAuth {
    /// `Authorization: PVEAPIToken=…` on every request (no CSRF token, no expiry).
    Token(ApiToken),
    /// `POST /access/ticket` with `user@realm` and the password; the ticket goes in the
    /// `PVEAuthCookie` cookie and the CSRF token on every write, renewed before its 2 h expiry.
    Ticket {
        username: String,
        password: Password,
    },
}

impl PveAuth {
    /// Who the requests run as: the token id or the username (not secret).
    pub fn identity(&self) -> &str {
        match self {
            PveAuth::Token(token) => token.id(),
            PveAuth::Ticket { username, .. } => username,
        }
    }
}

/// Everything needed to talk to one node.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// `https://host:8006` (a trailing `/` or `/api2/json` is accepted and removed).
    pub endpoint: String,
    pub auth: PveAuth,
    pub node: String,
    pub trust: TlsTrust,
}

/// Raw values as flags give them; `None` falls back to the environment.
#[derive(Clone, Default)]
pub struct ConnectionFlags {
    pub endpoint: Option<String>,
    /// `user@realm!tokenid=secret`, unvalidated; redacted in `Debug`.
    pub api_token: Option<String>,
    /// `user@realm` for ticket login (default: `PROXMOX_VE_USERNAME`).
    pub username: Option<String>,
    /// A file holding the password for ticket login (default: `PROXMOX_VE_PASSWORD`, then
    /// `PROXMOX_VE_PASSWORD_FILE`). There is deliberately no password flag: argv is visible in
    /// the process list.
    pub password_file: Option<PathBuf>,
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
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("node", &self.node)
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// The accepted credential names, for error messages.
const CREDENTIALS_HINT: &str = "give either an API token (PROXMOX_VE_API_TOKEN / --api-token, \
     user@realm!tokenid=secret) or a username (PROXMOX_VE_USERNAME / --username, user@realm) with \
     a password (PROXMOX_VE_PASSWORD, or a file: --password-file / PROXMOX_VE_PASSWORD_FILE)";

impl ConnectionSettings {
    /// Resolve flags, falling back to `env(NAME)` for each missing value; a password file is
    /// read from disk.
    pub fn resolve(
        flags: &ConnectionFlags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnectionSettings, PveError> {
        ConnectionSettings::resolve_with(flags, env, |path| {
            use phoenix_model::input::{InputKind, read_text};
            read_text(path, InputKind::Secret).map_err(|e| {
                let kind = if e.is_not_found() {
                    std::io::ErrorKind::NotFound
                } else {
                    std::io::ErrorKind::InvalidInput
                };
                std::io::Error::new(kind, e.to_string())
            })
        })
    }

    /// [`ConnectionSettings::resolve`] with the password file read through `read_file`.
    pub fn resolve_with(
        flags: &ConnectionFlags,
        env: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&Path) -> std::io::Result<String>,
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
        let auth = resolve_auth(flags, &env, &read_file)?;
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
            auth,
            node,
            trust,
        })
    }
}

/// Exactly one of a token or username + password; each value from its flag, then the
/// environment. Errors name the setting and never contain a secret.
fn resolve_auth(
    flags: &ConnectionFlags,
    env: &impl Fn(&str) -> Option<String>,
    read_file: &impl Fn(&Path) -> std::io::Result<String>,
) -> Result<PveAuth, PveError> {
    let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let token = set(flags.api_token.clone()).or_else(|| set(env(ENV_API_TOKEN)));
    let username = set(flags.username.clone()).or_else(|| set(env(ENV_USERNAME)));
    let password = match &flags.password_file {
        Some(path) => Some(read_password_file(path, "--password-file", read_file)?),
        None => match (set(env(ENV_PASSWORD)), set(env(ENV_PASSWORD_FILE))) {
            (Some(_), Some(_)) => {
                return Err(PveError::Setting {
                    name: ENV_PASSWORD.into(),
                    message: format!("give either {ENV_PASSWORD} or {ENV_PASSWORD_FILE}, not both"),
                });
            }
            (Some(text), None) => Some(Password::new(text)),
            (None, Some(path)) => Some(read_password_file(
                Path::new(&path),
                ENV_PASSWORD_FILE,
                read_file,
            )?),
            (None, None) => None,
        },
    };
    match (token, username, password) {
        (Some(_), user, pass) if user.is_some() || pass.is_some() => Err(PveError::Setting {
            name: ENV_API_TOKEN.into(),
            message: format!(
                "both an API token and a {} are given; phoenix does not pick one: unset \
                 {ENV_API_TOKEN} or {ENV_USERNAME}/{ENV_PASSWORD}/{ENV_PASSWORD_FILE} (and the \
                 matching flags)",
                if user.is_some() {
                    "username"
                } else {
                    "password"
                }
            ),
        }),
        (Some(token), _, _) => Ok(PveAuth::Token(ApiToken::parse(&token)?)),
        (None, Some(username), Some(password)) => Ok(PveAuth::Ticket {
            username: parse_username(&username)?,
            password,
        }),
        (None, Some(_), None) => Err(PveError::Setting {
            name: ENV_PASSWORD.into(),
            message: format!(
                "a username is given but no password: set {ENV_PASSWORD}, or pass \
                 --password-file / set {ENV_PASSWORD_FILE}"
            ),
        }),
        (None, None, Some(_)) => Err(PveError::Setting {
            name: ENV_USERNAME.into(),
            message: format!(
                "a password is given but no username: set {ENV_USERNAME} or pass --username \
                 (user@realm)"
            ),
        }),
        (None, None, None) => Err(PveError::Setting {
            name: ENV_API_TOKEN.into(),
            message: format!("no credentials: {CREDENTIALS_HINT}"),
        }),
    }
}

/// The file's text without its final line break; empty or multi-line is refused. The error
/// names the file, never its content.
fn read_password_file(
    path: &Path,
    source: &str,
    read_file: &impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Password, PveError> {
    let bad = |message: String| PveError::Setting {
        name: source.into(),
        message: format!("{}: {message}", path.display()),
    };
    let text = read_file(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(bad("the password file is empty".into()));
    }
    if text.contains(['\n', '\r']) {
        return Err(bad("the password file has more than one line".into()));
    }
    Ok(Password::new(text))
}

/// `user@realm` (PVE's userid); a token id (`…!tokenid`) is refused with a pointer to the token
/// setting.
fn parse_username(text: &str) -> Result<String, PveError> {
    let text = text.trim();
    let bad = |message: &str| PveError::Setting {
        name: ENV_USERNAME.into(),
        message: format!("{text:?}: {message}"),
    };
    if text.contains('!') {
        return Err(bad(&format!(
            "looks like an API token id; put user@realm!tokenid=secret in {ENV_API_TOKEN} instead"
        )));
    }
    let (name, realm) = text
        .rsplit_once('@')
        .ok_or_else(|| bad("expected user@realm (for example root@pam)"))?;
    let realm_ok = !realm.is_empty()
        && realm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if name.is_empty()
        || name.contains([':', '='])
        || name.chars().any(char::is_control)
        || !realm_ok
    {
        return Err(bad("expected user@realm (for example root@pam)"));
    }
    Ok(text.to_string())
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
            auth: PveAuth::Token(t),
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

    fn no_files(path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            path.display().to_string(),
        ))
    }

    const BASE: [(&str, &str); 3] = [
        (ENV_ENDPOINT, "https://pve:8006"),
        (ENV_NODE, "pve1"),
        (ENV_CA_FILE, "/etc/pve/pve-root-ca.pem"),
    ];

    fn resolve_env(
        flags: &ConnectionFlags,
        extra: &[(&str, &str)],
    ) -> Result<ConnectionSettings, PveError> {
        let pairs: Vec<_> = BASE.iter().chain(extra).copied().collect();
        ConnectionSettings::resolve_with(flags, env_of(&pairs), |p| {
            if p == Path::new("/run/secrets/pve") {
                Ok("fi1e-s3cret\n".into())
            } else {
                no_files(p)
            }
        })
    }

    fn setting_name(r: Result<ConnectionSettings, PveError>) -> String {
        match r {
            Err(PveError::Setting { name, .. }) => name,
            other => panic!("expected a setting error, got {other:?}"),
        }
    }

    #[test]
    fn ticket_credentials_from_env_and_flags() {
        let flags = ConnectionFlags::default();
        let s = resolve_env(
            &flags,
            &[(ENV_USERNAME, "root@pam"), (ENV_PASSWORD, "pa55-w0rd")],
        )
        .unwrap();
        assert_eq!(
            s.auth,
            PveAuth::Ticket {
                username: "root@pam".into(),
                password: Password::new("pa55-w0rd"),
            }
        );
        assert_eq!(s.auth.identity(), "root@pam");
        // The password file: flag, then environment; the final line break is dropped.
        let from_flag = ConnectionFlags {
            username: Some("phoenix@pve".into()),
            password_file: Some("/run/secrets/pve".into()),
            ..Default::default()
        };
        let s = resolve_env(&from_flag, &[(ENV_USERNAME, "root@pam")]).unwrap();
        assert_eq!(
            s.auth,
            PveAuth::Ticket {
                username: "phoenix@pve".into(),
                password: Password::new("fi1e-s3cret"),
            }
        );
        // The flag's file wins over the environment's password.
        let s = resolve_env(&from_flag, &[(ENV_PASSWORD, "env-pass")]).unwrap();
        assert!(
            matches!(&s.auth, PveAuth::Ticket { password, .. } if password.expose() == "fi1e-s3cret")
        );
        let s = resolve_env(
            &flags,
            &[
                (ENV_USERNAME, "root@pam"),
                (ENV_PASSWORD_FILE, "/run/secrets/pve"),
            ],
        )
        .unwrap();
        assert!(
            matches!(&s.auth, PveAuth::Ticket { password, .. } if password.expose() == "fi1e-s3cret")
        );
        // Token auth still resolves, from the flag or the environment.
        let s = resolve_env(&flags, &[(ENV_API_TOKEN, "root@pam!p=abc")]).unwrap();
        assert!(matches!(s.auth, PveAuth::Token(_)));
    }

    #[test]
    fn exactly_one_kind_of_credentials() {
        let flags = ConnectionFlags::default();
        let none = resolve_env(&flags, &[]).unwrap_err().to_string();
        for name in [ENV_API_TOKEN, ENV_USERNAME, ENV_PASSWORD, ENV_PASSWORD_FILE] {
            assert!(none.contains(name), "{none}");
        }
        let both = resolve_env(
            &flags,
            &[
                (ENV_API_TOKEN, "root@pam!p=t0ken-s3cret"),
                (ENV_USERNAME, "root@pam"),
                (ENV_PASSWORD, "pa55-w0rd"),
            ],
        )
        .unwrap_err();
        let text = both.to_string();
        assert!(text.contains("both"), "{text}");
        assert!(!text.contains("t0ken-s3cret") && !text.contains("pa55-w0rd"));
        // A token flag with a password left in the environment is still ambiguous.
        let token_flag = ConnectionFlags {
            api_token: Some("root@pam!p=abc".into()),
            ..Default::default()
        };
        assert_eq!(
            setting_name(resolve_env(&token_flag, &[(ENV_PASSWORD, "x")])),
            ENV_API_TOKEN
        );
        assert_eq!(
            setting_name(resolve_env(&flags, &[(ENV_USERNAME, "root@pam")])),
            ENV_PASSWORD
        );
        assert_eq!(
            setting_name(resolve_env(&flags, &[(ENV_PASSWORD, "pa55-w0rd")])),
            ENV_USERNAME
        );
        assert_eq!(
            setting_name(resolve_env(
                &flags,
                &[
                    (ENV_USERNAME, "root@pam"),
                    (ENV_PASSWORD, "pa55-w0rd"),
                    (ENV_PASSWORD_FILE, "/run/secrets/pve"),
                ]
            )),
            ENV_PASSWORD
        );
    }

    #[test]
    fn bad_usernames_and_password_files() {
        let flags = ConnectionFlags::default();
        for bad in ["root", "root@", "@pam", "root@pam!tok", "ro:ot@pam"] {
            let err = resolve_env(&flags, &[(ENV_USERNAME, bad), (ENV_PASSWORD, "pa55-w0rd")])
                .unwrap_err();
            assert!(
                matches!(&err, PveError::Setting { name, .. } if name == ENV_USERNAME),
                "{bad}: {err}"
            );
            assert!(!err.to_string().contains("pa55-w0rd"));
        }
        let missing = ConnectionFlags {
            username: Some("root@pam".into()),
            password_file: Some("/nonexistent/pw".into()),
            ..Default::default()
        };
        let err = resolve_env(&missing, &[]).unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/pw") && err.contains("--password-file"),
            "{err}"
        );
        for content in ["", "\n", "two\nlines\n"] {
            let err = ConnectionSettings::resolve_with(
                &ConnectionFlags {
                    username: Some("root@pam".into()),
                    password_file: Some("/pw".into()),
                    insecure: true,
                    ..Default::default()
                },
                env_of(&BASE),
                |_| Ok(content.to_string()),
            )
            .unwrap_err()
            .to_string();
            assert!(!err.contains("lines\n") && err.contains("/pw"), "{err}");
        }
    }

    #[test]
    fn password_never_in_debug() {
        let flags = ConnectionFlags {
            username: Some("root@pam".into()),
            password_file: Some("/run/secrets/pve".into()),
            ..Default::default()
        };
        let s = resolve_env(&flags, &[]).unwrap();
        let password = Password::new("fi1e-s3cret");
        for text in [
            format!("{s:?}"),
            format!("{:?}", s.auth),
            format!("{flags:?}"),
            format!("{password:?}"),
            format!("{password}"),
        ] {
            assert!(!text.contains("fi1e-s3cret"), "{text}");
        }
        assert!(format!("{s:?}").contains("root@pam"));
    }
}
