//! Running the tools the lab needs (`ip`, `nft`, `sysctl`, `kill`), always with argv vectors,
//! never through a shell. Every process started here is recorded for the labs this process
//! works on ([`crate::procs`]). I/O: processes.

use std::process::{Child, Command, Output, Stdio};

use crate::LabError;

/// `program` with an environment of its own: `PATH` and `LANG` only. Nothing of phoenix's
/// environment — which may hold `PROXMOX_VE_API_TOKEN`, a passphrase or a configuration's
/// `{"env"}` secret — reaches the lab's tools and daemons (readable in `/proc/PID/environ`
/// for as long as a daemon lives); what a daemon needs it gets in its argv (never a secret)
/// or a 0600 file.
pub(crate) fn command(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8");
    if let Some(path) = std::env::var_os("PATH") {
        // The operator's PATH finds the lab's own binaries (a venv's traefik, a built step-ca).
        c.env("PATH", path);
    }
    c
}

fn argv_text(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run to completion; stdout on success, [`LabError::Command`] with stderr otherwise.
pub fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    let out = output(program, args)?;
    check(program, args, out)
}

/// Run to completion and return the raw output, whatever the exit status.
pub fn output(program: &str, args: &[&str]) -> Result<Output, LabError> {
    let child = command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            program: program.to_string(),
            source,
        })?;
    crate::procs::record(child.id());
    child.wait_with_output().map_err(|source| LabError::Spawn {
        program: program.to_string(),
        source,
    })
}

/// Run to completion with `input` on stdin; stdout on success.
pub fn run_stdin(program: &str, args: &[&str], input: &[u8]) -> Result<String, LabError> {
    use std::io::Write;
    let spawn_err = |source| LabError::Spawn {
        program: program.to_string(),
        source,
    };
    let mut child = command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    crate::procs::record(child.id());
    if let Some(mut stdin) = child.stdin.take() {
        // A child that exits early closes the pipe; its status tells the story.
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    check(program, args, out)
}

/// Start without waiting (for running many batches side by side).
pub fn spawn(program: &str, args: &[&str]) -> Result<Child, LabError> {
    let child = command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            program: program.to_string(),
            source,
        })?;
    crate::procs::record(child.id());
    Ok(child)
}

/// Start `program args…` inside network namespace `ns` without `ip netns exec` (no extra
/// process, no mount namespace): a short-lived thread enters the namespace (`setns` changes
/// only the calling thread) and spawns the child there, which inherits it. For programs that
/// need the namespace's network only (nft), not its `/etc/netns` files.
pub fn spawn_in(ns: &str, program: &str, args: &[&str]) -> Result<Child, LabError> {
    let path = std::path::Path::new("/run/netns").join(ns);
    let handle = std::fs::File::open(&path).map_err(|e| LabError::io(&path, e))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                LabError::Service {
                    name: format!("{program} in {ns}"),
                    reason: format!("setns: {e}"),
                }
            })?;
            spawn(program, args)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(LabError::Service {
                name: format!("{program} in {ns}"),
                reason: "the spawning thread panicked".into(),
            })
        })
    })
}

/// Wait for a spawned child and check its status.
pub fn finish(program: &str, args: &[&str], child: Child) -> Result<String, LabError> {
    let out = child.wait_with_output().map_err(|source| LabError::Spawn {
        program: program.to_string(),
        source,
    })?;
    check(program, args, out)
}

fn check(program: &str, args: &[&str], out: Output) -> Result<String, LabError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            argv: argv_text(program, args),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Start `program args…` detached (its own process group), stdin empty, stdout and stderr to
/// `out`; returns its pid. A thread reaps it when it exits, so a stopped service leaves no
/// zombie while this process lives (daemonising would hand it to init, which may not reap).
pub(crate) fn spawn_detached(
    program: &str,
    args: &[String],
    out: std::fs::File,
) -> Result<u32, LabError> {
    use std::os::unix::process::CommandExt;
    let err = out.try_clone().map_err(|source| LabError::Spawn {
        program: program.to_string(),
        source,
    })?;
    let mut child = command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|source| LabError::Spawn {
            program: program.to_string(),
            source,
        })?;
    let pid = child.id();
    crate::procs::record(pid);
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}
