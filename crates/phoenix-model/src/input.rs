//! Reading operator input (configuration, compose, secret and key files): regular files only,
//! opened without blocking, bounded by a cap per kind, and optionally kept inside a directory.
//! I/O: opens and reads the one file it is given. Caps are listed in docs/inputs.md.
//! [`read_input`] is the loader's form: a located finding instead of an error.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostics};
use crate::source::Location;

/// What a file is for; decides its size cap and how it is named in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A `phoenix_*.json` file, `certificate-manifest.json`, `phoenix-lint.json`, an
    /// observed-state file.
    Config,
    /// A stack's `docker-compose.yml`, `phoenix.json` or one of its environment files.
    Stack,
    /// A `{"file": …}` secret.
    Secret,
    /// A certificate, key or provisioner key given to phoenix (PEM, JWK).
    Material,
}

impl InputKind {
    /// The most bytes phoenix reads for this kind.
    pub const fn cap(self) -> u64 {
        match self {
            InputKind::Config => crate::json::MAX_FILE_BYTES as u64,
            InputKind::Stack => 1024 * 1024,
            InputKind::Secret => 64 * 1024,
            InputKind::Material => 1024 * 1024,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            InputKind::Config => "configuration file",
            InputKind::Stack => "stack file",
            InputKind::Secret => "secret file",
            InputKind::Material => "certificate or key file",
        }
    }
}

/// Why an input file was not read. Never carries any of the file's content.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error("{} is {what}, not a regular file; phoenix reads only regular files", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{} is larger than {cap} bytes, the most phoenix reads for a {}", path.display(), kind.noun())]
    TooLarge {
        path: PathBuf,
        cap: u64,
        kind: InputKind,
    },
    #[error("{}: too many levels of symbolic links (a symlink loop)", path.display())]
    SymlinkLoop { path: PathBuf },
    #[error("{} resolves to {}, outside the configuration directory {}", path.display(), target.display(), root.display())]
    Outside {
        path: PathBuf,
        target: PathBuf,
        root: PathBuf,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
}

impl InputError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, InputError::NotFound { .. })
    }

    pub fn is_too_large(&self) -> bool {
        matches!(self, InputError::TooLarge { .. })
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            InputError::NotFound { .. } => "check the path".into(),
            InputError::NotRegular { .. } => {
                "give the path of a plain file (a FIFO, device or socket is never read)".into()
            }
            InputError::TooLarge { .. } => {
                "check that the path names the intended file; the caps are listed in docs/inputs.md"
                    .into()
            }
            InputError::SymlinkLoop { .. } => {
                "the symbolic links point at each other; make the path name a plain file".into()
            }
            InputError::Outside { root, .. } => format!(
                "stack and compose files are read only inside {}; copy the file there instead of linking to it",
                root.display()
            ),
            InputError::Io { .. } => "check the file's permissions".into(),
            InputError::NotUtf8 { .. } => "save the file as UTF-8".into(),
        }
    }
}

/// The bytes of the regular file `path`, at most `kind`'s cap. A FIFO, device, socket or
/// directory is refused without reading (the open never blocks).
pub fn read_regular(path: &Path, kind: InputKind) -> Result<Vec<u8>, InputError> {
    let file = open(path)?;
    let meta = file.metadata().map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            path: path.to_path_buf(),
            what: describe(&meta),
        });
    }
    let cap = kind.cap();
    let too_large = || InputError::TooLarge {
        path: path.to_path_buf(),
        cap,
        kind,
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow between the check and the read: read at most one byte past the cap.
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_text(path: &Path, kind: InputKind) -> Result<String, InputError> {
    String::from_utf8(read_regular(path, kind)?).map_err(|_| InputError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// [`read_regular`] of a file that must stay inside one of `roots` once every symbolic link
/// is resolved (stack and compose files: a link out of the configuration is refused).
pub fn read_within(path: &Path, roots: &[&Path], kind: InputKind) -> Result<Vec<u8>, InputError> {
    let target = canonical(path)?;
    let canon_roots: Vec<PathBuf> = roots.iter().filter_map(|r| canonical(r).ok()).collect();
    if !canon_roots.iter().any(|r| target.starts_with(r)) {
        return Err(InputError::Outside {
            path: path.to_path_buf(),
            target,
            root: canon_roots
                .first()
                .cloned()
                .unwrap_or_else(|| roots.first().map_or_else(PathBuf::new, |r| r.to_path_buf())),
        });
    }
    read_regular(&target, kind).map_err(|e| rename(e, path))
}

fn canonical(path: &Path) -> Result<PathBuf, InputError> {
    path.canonicalize().map_err(|e| io_error(path, e))
}

/// Report errors under the path the configuration names, not the resolved one.
fn rename(e: InputError, path: &Path) -> InputError {
    let path = path.to_path_buf();
    match e {
        InputError::NotRegular { what, .. } => InputError::NotRegular { path, what },
        InputError::TooLarge { cap, kind, .. } => InputError::TooLarge { path, cap, kind },
        InputError::Io { source, .. } => InputError::Io { path, source },
        other => other,
    }
}

fn open(path: &Path) -> Result<File, InputError> {
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one;
    // it does not change reads of a regular file. O_NOCTTY: a terminal never becomes ours.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // A socket cannot be opened at all: say what it is.
            Some(libc::ENXIO) => match std::fs::metadata(path) {
                Ok(m) if !m.is_file() => InputError::NotRegular {
                    path: path.to_path_buf(),
                    what: describe(&m),
                },
                _ => io_error(path, e),
            },
            _ => io_error(path, e),
        })
}

fn io_error(path: &Path, e: std::io::Error) -> InputError {
    let path = path.to_path_buf();
    if e.kind() == std::io::ErrorKind::NotFound {
        InputError::NotFound { path }
    } else if e.raw_os_error() == Some(libc::ELOOP) {
        InputError::SymlinkLoop { path }
    } else {
        InputError::Io { path, source: e }
    }
}

fn describe(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The loader's form of a read: a finding instead of an error.
/// An input file the loader reads: its kind, whether it must exist, the directories it must
/// stay in (none: anywhere) and the configuration member that names it, if one does.
pub(crate) struct Input<'a> {
    pub path: &'a Path,
    pub kind: InputKind,
    pub required: bool,
    pub within: &'a [&'a Path],
    pub named_at: Option<Location>,
}

impl<'a> Input<'a> {
    pub fn config(path: &'a Path, required: bool) -> Self {
        Input {
            path,
            kind: InputKind::Config,
            required,
            within: &[],
            named_at: None,
        }
    }
}

/// The bytes of `i`, or `None` after reporting why not (nothing for an optional file that
/// does not exist). A refused file's content is never read, so never shown.
pub(crate) fn read_input(i: &Input<'_>, diags: &mut Diagnostics) -> Option<Vec<u8>> {
    let read = if i.within.is_empty() {
        read_regular(i.path, i.kind)
    } else {
        read_within(i.path, i.within, i.kind)
    };
    let e = match read {
        Ok(bytes) => return Some(bytes),
        Err(e) if e.is_not_found() && !i.required => return None,
        Err(e) => e,
    };
    let code = if e.is_too_large() {
        Code::TooLarge
    } else {
        Code::FileUnreadable
    };
    let hint = if e.is_not_found() && i.kind == InputKind::Config {
        "pass the directory that holds the phoenix_*.json files with --config".to_string()
    } else {
        e.hint()
    };
    match &i.named_at {
        Some(loc) => diags.emit(code, loc, e.to_string(), hint),
        None => crate::diag::file_diag(diags, code, i.path, e.to_string(), &hint),
    }
    None
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn mkfifo(p: &Path) {
        let ok = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mkfifo {}", p.display());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tmp();
        let p = d.path().join("fifo.json");
        mkfifo(&p);
        let e = read_regular(&p, InputKind::Config).err();
        assert!(
            matches!(e, Some(InputError::NotRegular { what, .. }) if what.contains("FIFO")),
            "{e:?}"
        );
    }

    #[test]
    fn devices_and_directories_are_refused() {
        for (p, what) in [("/dev/zero", "character device"), ("/", "directory")] {
            let e = read_regular(Path::new(p), InputKind::Secret).err();
            assert!(
                matches!(&e, Some(InputError::NotRegular { what: w, .. }) if w.contains(what)),
                "{p}: {e:?}"
            );
        }
    }

    #[test]
    fn the_cap_is_enforced() {
        let d = tmp();
        let p = d.path().join("s");
        let at_cap = vec![b'a'; InputKind::Secret.cap() as usize];
        std::fs::write(&p, &at_cap).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_regular(&p, InputKind::Secret).ok(), Some(at_cap));
        std::fs::write(&p, vec![b'a'; InputKind::Secret.cap() as usize + 1])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(read_regular(&p, InputKind::Secret).is_err_and(|e| e.is_too_large()));
    }

    #[test]
    fn links_out_of_the_root_and_loops_are_refused() {
        let d = tmp();
        let root = d.path().join("etc");
        std::fs::create_dir(&root).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(d.path().join("outside"), "secret").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("inside"), "ok").unwrap_or_else(|e| panic!("{e}"));
        let link = |to: &Path, name: &str| {
            std::os::unix::fs::symlink(to, root.join(name)).unwrap_or_else(|e| panic!("{e}"));
            root.join(name)
        };
        let out = link(&d.path().join("outside"), "out");
        let inn = link(&root.join("inside"), "in");
        let a = link(&root.join("b"), "a");
        link(&root.join("a"), "b");
        let e = read_within(&out, &[&root], InputKind::Stack).err();
        assert!(matches!(e, Some(InputError::Outside { .. })), "{e:?}");
        assert_eq!(
            read_within(&inn, &[&root], InputKind::Stack).ok(),
            Some(b"ok".to_vec())
        );
        let e = read_within(&a, &[&root], InputKind::Stack).err();
        assert!(matches!(e, Some(InputError::SymlinkLoop { .. })), "{e:?}");
    }
}
