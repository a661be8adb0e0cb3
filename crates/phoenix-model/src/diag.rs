//! Diagnostics: every finding of loading and validation, with a stable code, a severity, a
//! location (file + JSON pointer, resolved to `line:col` at the end) and a hint.
//!
//! No I/O.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::PathBuf;

use serde::Serialize;

use crate::source::{FileId, Location, PointerIndex, SourceMap, Target};

/// How bad a finding is. Errors make `validate` exit 1 and stop every later stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($( $variant:ident = $code:literal, $sev:ident, $title:literal; )*) => {
        /// Stable diagnostic codes. Never renumber: operators grep and suppress by code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $( $variant, )* }

        impl Code {
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// A one-line title of what the code is about (for documentation and `--explain`).
            pub fn title(self) -> &'static str {
                match self { $( Code::$variant => $title, )* }
            }
        }
    };
}

codes! {
    FileUnreadable = "PHX-E001", Error, "a configuration file is missing or unreadable";
    JsonSyntax = "PHX-E002", Error, "the file is not valid JSON";
    TooLarge = "PHX-E003", Error, "the file is too large or too deeply nested";
    DuplicateKey = "PHX-E004", Error, "the same key appears twice in one JSON object";
    TypeMismatch = "PHX-E005", Error, "a value has the wrong type or form";
    MissingField = "PHX-E006", Error, "a required field is missing";
    YamlSyntax = "PHX-E007", Error, "a compose file is not valid YAML";
    DuplicateVmid = "PHX-E010", Error, "two guests share a VMID";
    DuplicateAddress = "PHX-E011", Error, "two NICs share an IP address";
    DuplicateMac = "PHX-E012", Error, "two NICs share a MAC address";
    DuplicateHostname = "PHX-E013", Error, "two guests share a hostname";
    UnknownDependency = "PHX-E014", Error, "a dependency names a guest that does not exist";
    UnknownCloneSource = "PHX-E015", Error, "a clone source names a guest that does not exist";
    DependencyCycle = "PHX-E016", Error, "guests depend on each other in a cycle";
    AddressOutsideBridge = "PHX-E020", Error, "an address lies outside the subnet of its bridge";
    UnknownBridge = "PHX-E021", Error, "a NIC is on a bridge the host does not define";
    GatewayOutsideSubnet = "PHX-E022", Error, "a gateway lies outside its NIC's subnet";
    MultipleGateways = "PHX-E023", Error, "a guest has more than one default gateway";
    InvalidAddress = "PHX-E024", Error, "an address, subnet or MAC cannot be parsed";
    DhcpRoute = "PHX-E030", Error, "a Traefik service points at a guest without a static address";
    SchemeMismatch = "PHX-E031", Error, "a route's scheme contradicts what the service speaks";
    UnknownEntrypoint = "PHX-E032", Error, "a route uses a Traefik entrypoint that does not exist";
    InvalidName = "PHX-E040", Error, "a name contains characters that are not allowed";
    InvalidPath = "PHX-E041", Error, "a path is not an absolute, plain path";
    InvalidRule = "PHX-E042", Error, "a firewall rule field is not valid";
    InvalidVolume = "PHX-E043", Error, "an OS template or base image is not a Proxmox volume id or a plain path";
    InvalidSecret = "PHX-E050", Error, "a secret reference is malformed";
    UnknownGuest = "PHX-E051", Error, "a reference names a guest that does not exist";
    InvalidSan = "PHX-E052", Error, "a certificate SAN or name is malformed";
    InvalidValue = "PHX-E053", Error, "a value is outside its allowed range or set";
    UnknownStack = "PHX-E054", Error, "a stack reference names a stack that does not exist";
    UnknownKey = "PHX-W001", Warning, "an unknown key (kept, but nothing reads it)";
    NotSupportedYet = "PHX-W002", Warning, "a key phoenix reads but does not act on yet";
    UnusedKey = "PHX-W003", Warning, "a key nothing ever read (dead in the bash system too)";
    LegacyForm = "PHX-W004", Warning, "a form an older bash system accepted; phoenix reads it and names the current spelling";
    StaleRuleAddress = "PHX-W010", Warning, "a firewall rule names an address no guest or host has";
    StaleNameserver = "PHX-W011", Warning, "a nameserver names an address no guest or host has";
    StaleSan = "PHX-W012", Warning, "a certificate SAN names an address no guest or host has";
    CertificateGap = "PHX-W013", Warning, "a guest's certificate does not cover its service name or address";
    MacvlanRawLines = "PHX-W020", Warning, "a macvlan NIC is expressed through raw lxc.net lines";
    MacvlanUnreachable = "PHX-W021", Warning, "the host cannot reach a macvlan child's address";
    DhcpPrimaryNic = "PHX-W022", Warning, "a Traefik service's first NIC is DHCP; another NIC is used";
    SchemeInferred = "PHX-W023", Warning, "a route's scheme is not given and phoenix infers it";
    PlaintextSecret = "PHX-W030", Warning, "a secret is written in plain text";
    CaDirMounted = "PHX-W031", Warning, "the CA's key directory is mounted into a guest";
    UnsupportedFeature = "PHX-W032", Warning, "a guest feature phoenix does not provision yet";
    DuplicateRule = "PHX-W033", Warning, "a firewall rule repeats an earlier one";
    MissingOptionalFile = "PHX-W034", Warning, "an optional file named by the configuration is absent";
    UnsafeKeyMode = "PHX-W035", Warning, "a private key mode lets other users read it; phoenix writes a safe one";
    OverlayOnlyRoute = "PHX-W036", Warning, "the internal proxy is not a Swarm node but routes to a port only the overlay reaches";
    NameserverNotMeshDns = "PHX-W037", Warning, "a guest's nameserver is a host address the mesh DNS does not listen on";
    UnknownSnapshot = "PHX-W038", Warning, "a clone names a snapshot of its source that no guest's configuration creates";
    RoutePortMismatch = "PHX-W039", Warning, "a route's backend port is not where its guest's stacks publish the service";
    RouteNameUncovered = "PHX-W040", Warning, "a routed hostname is not covered by the gateway's or the internal proxy's certificates";
    ClientCertFromStepCa = "PHX-W041", Warning, "a client certificate from step-ca, whose default template adds serverAuth";
    CertPathOutsideMounts = "PHX-W042", Warning, "a certificate path lies outside every mount point of its guest";
    ByteOrderMark = "PHX-W043", Warning, "a JSON file starts with a byte-order mark (jq reads it; JSON does not allow it)";
    TemplateWithSnapshots = "PHX-W044", Warning, "a template takes snapshots, which a Proxmox template cannot hold: it stays a guest";
}

impl Code {
    /// A file that could not be read or parsed: everything read from it is missing, so what
    /// other files say about it is a knock-on finding.
    pub fn is_root_cause(self) -> bool {
        matches!(
            self,
            Code::FileUnreadable | Code::JsonSyntax | Code::TooLarge | Code::YamlSyntax
        )
    }

    /// Findings about a reference to something (a guest, a stack, an address) defined
    /// elsewhere: knock-on findings when a file is missing.
    pub fn is_cross_reference(self) -> bool {
        matches!(
            self,
            Code::UnknownDependency
                | Code::UnknownCloneSource
                | Code::UnknownGuest
                | Code::UnknownStack
                | Code::UnknownBridge
                | Code::StaleRuleAddress
                | Code::StaleNameserver
                | Code::StaleSan
                | Code::CertificateGap
        )
    }
}

/// Most characters of a value a message quotes; a longer value is cut and its length given.
pub const QUOTE_CHARS: usize = 80;
/// Most characters of a message or hint once resolved, whatever it quotes.
pub const MESSAGE_CHARS: usize = 2000;

/// A value as a message quotes it: escaped (`escape_debug`), at most [`QUOTE_CHARS`]
/// characters, and when cut, `…` and its length (`aaaa… (5242880 bytes)`).
pub struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut escaped = self.0.escape_debug();
        for c in escaped.by_ref().take(QUOTE_CHARS) {
            f.write_char(c)?;
        }
        if escaped.next().is_some() {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// `.quoted()`: how every diagnostic shows a value of the configuration.
pub trait Quote {
    fn quoted(&self) -> Quoted<'_>;
}

impl Quote for str {
    fn quoted(&self) -> Quoted<'_> {
        Quoted(self)
    }
}

/// `s` cut to `max` characters, with `…` and the full length when cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}… ({} bytes)", &s[..at], s.len()),
        None => s.to_string(),
    }
}

/// Where a diagnostic points before it is resolved to line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// A member of a JSON file, found again by pointer.
    Pointer { location: Location, target: Target },
    /// An exact byte range (parse errors, duplicate keys).
    Range {
        file: FileId,
        pointer: String,
        range: Range<usize>,
    },
    /// A whole file, or a file phoenix could not read (line/col unknown).
    File { path: PathBuf },
}

/// One finding, before resolution.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub hint: String,
    pub anchor: Anchor,
}

impl Diagnostic {
    pub fn new(
        code: Code,
        location: &Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            hint: hint.into(),
            anchor: Anchor::Pointer {
                location: location.clone(),
                target: Target::Value,
            },
        }
    }

    /// Point at the key of the member rather than its value.
    pub fn at_key(mut self) -> Self {
        if let Anchor::Pointer { target, .. } = &mut self.anchor {
            *target = Target::Key;
        }
        self
    }
}

/// A collector passed through loading and validation.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn emit(
        &mut self,
        code: Code,
        location: &Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Diagnostic::new(code, location, message, hint));
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Resolve every anchor to `file:line:col`, sorted by file, position and code.
    pub fn resolve(&self, sources: &SourceMap) -> Vec<Finding> {
        let mut by_file: std::collections::BTreeMap<FileId, Vec<&Diagnostic>> = Default::default();
        let mut out = Vec::with_capacity(self.items.len());
        for d in &self.items {
            match &d.anchor {
                Anchor::Pointer { location, .. } => {
                    by_file.entry(location.file).or_default().push(d)
                }
                Anchor::Range { file, .. } => by_file.entry(*file).or_default().push(d),
                Anchor::File { path } => out.push(Finding::from_parts(
                    d,
                    path.clone(),
                    String::new(),
                    None,
                    None,
                )),
            }
        }
        for (file, diags) in by_file {
            let source = sources.get(file);
            let index = PointerIndex::new(&source.text);
            let lines = crate::source::LineIndex::new(&source.text);
            for d in diags {
                let (pointer, range) = match &d.anchor {
                    Anchor::Pointer { location, target } => (
                        location.pointer.clone(),
                        index.locate(&location.pointer, *target),
                    ),
                    Anchor::Range { pointer, range, .. } => (pointer.clone(), Some(range.clone())),
                    Anchor::File { .. } => continue,
                };
                let pos = range
                    .as_ref()
                    .map(|r| lines.line_col(&source.text, r.start));
                out.push(Finding::from_parts(
                    d,
                    source.path.clone(),
                    pointer,
                    range,
                    pos,
                ));
            }
        }
        for f in &mut out {
            f.message = cut(&sources.redact(&f.message), MESSAGE_CHARS);
            f.hint = cut(&sources.redact(&f.hint), MESSAGE_CHARS);
        }
        out.sort_by(|a, b| {
            (&a.file, a.line, a.column, a.code, &a.message)
                .cmp(&(&b.file, b.line, b.column, b.code, &b.message))
        });
        out
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<T: IntoIterator<Item = Diagnostic>>(&mut self, iter: T) {
        self.items.extend(iter);
    }
}

/// A resolved finding: what `validate --output json` prints, one object per finding.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub pointer: String,
    pub message: String,
    pub hint: String,
    /// Byte range in the file, for renderers that show source snippets.
    #[serde(skip)]
    pub span: Option<Range<usize>>,
}

impl Finding {
    fn from_parts(
        d: &Diagnostic,
        file: PathBuf,
        pointer: String,
        span: Option<Range<usize>>,
        pos: Option<(usize, usize)>,
    ) -> Self {
        let (line, column) = pos.unwrap_or((1, 1));
        Finding {
            severity: d.severity,
            code: d.code.as_str(),
            file,
            line,
            column,
            pointer,
            message: d.message.clone(),
            hint: d.hint.clone(),
            span,
        }
    }
}

/// A finding anchored at a byte range of `file` (a parse error, a BOM, a bad byte).
pub(crate) fn range_diag(
    code: Code,
    file: FileId,
    range: std::ops::Range<usize>,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> Diagnostic {
    Diagnostic {
        code,
        severity: code.severity(),
        message: message.into(),
        hint: hint.into(),
        anchor: Anchor::Range {
            file,
            pointer: String::new(),
            range,
        },
    }
}

/// A finding about a whole file (it cannot be read, or is not the kind of file it must be).
pub(crate) fn file_diag(
    diags: &mut Diagnostics,
    code: Code,
    path: &std::path::Path,
    message: String,
    hint: &str,
) {
    diags.push(Diagnostic {
        code,
        severity: code.severity(),
        message,
        hint: hint.to_string(),
        anchor: Anchor::File {
            path: path.to_path_buf(),
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn quoted_values_are_cut_with_their_length() {
        assert_eq!("a\nb".quoted().to_string(), "a\\nb");
        let long = "a".repeat(5 * 1024 * 1024);
        let q = long.quoted().to_string();
        assert_eq!(q, format!("{}… (5242880 bytes)", "a".repeat(QUOTE_CHARS)));
        assert_eq!(cut("é".repeat(3).as_str(), 2), "éé… (6 bytes)");
    }

    #[test]
    fn codes_are_unique_and_prefixed_by_severity() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {}", c.as_str());
            let letter = if c.severity() == Severity::Error {
                "PHX-E"
            } else {
                "PHX-W"
            };
            assert!(
                c.as_str().starts_with(letter),
                "{} has the wrong prefix",
                c.as_str()
            );
        }
    }
}
