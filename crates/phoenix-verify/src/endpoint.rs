//! The target interface: a [`ProbeTarget`] hands out an [`Endpoint`] per [`Subject`]; an
//! endpoint runs argv commands with a deadline and runs socket work *inside* its place
//! ([`Endpoint::in_net`]). [`LocalEndpoint`] is the current network namespace (unit tests on
//! loopback). Does I/O: processes.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::ProbeError;
use crate::report::Subject;

/// Socket work to run inside an endpoint's network namespace.
pub type NetJob = Box<dyn FnOnce() + Send + 'static>;

/// Where probes come from: one endpoint per subject.
pub trait ProbeTarget {
    fn endpoint(&self, subject: &Subject) -> Result<Box<dyn Endpoint>, ProbeError>;
}

/// A place probes run from.
pub trait Endpoint: Send + Sync {
    /// Human name for evidence (`netns phx-101`, `local`).
    fn label(&self) -> String;
    /// Run `argv` (no shell) inside the place; kill it at `deadline`.
    fn run(&self, argv: &[&str], deadline: Duration) -> Result<CommandOutput, ProbeError>;
    /// Run `job` with the calling context's network namespace set to this place. Returns
    /// when the job has finished.
    fn in_net(&self, job: NetJob) -> Result<(), ProbeError>;
}

/// Run a closure inside `ep`'s network and return its value.
pub fn with_net<E, R, F>(ep: &E, f: F) -> Result<R, ProbeError>
where
    E: Endpoint + ?Sized,
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    ep.in_net(Box::new(move || {
        let _ = tx.send(f());
    }))?;
    rx.recv().map_err(|_| ProbeError::ThreadDied {
        endpoint: ep.label(),
    })
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when killed (deadline) or ended by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

/// Spawn `argv`, capture output, poll for exit until `deadline`, then kill.
pub fn run_command(
    label: &str,
    argv: &[&str],
    deadline: Duration,
) -> Result<CommandOutput, ProbeError> {
    let (prog, args) = argv.split_first().ok_or(ProbeError::EmptyCommand)?;
    let start = Instant::now();
    let cmd_err = |source| ProbeError::Command {
        endpoint: label.to_string(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        source,
    };
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(cmd_err)?;
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(cmd_err)? {
            break Some(s);
        }
        if start.elapsed() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        thread::sleep(Duration::from_millis(5));
    };
    let join =
        |h: Option<thread::JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(CommandOutput {
        code: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        stdout: join(out),
        stderr: join(err),
        timed_out,
        elapsed: start.elapsed(),
    })
}

fn drain<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The current network namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalEndpoint;

impl Endpoint for LocalEndpoint {
    fn label(&self) -> String {
        "local".to_string()
    }

    fn run(&self, argv: &[&str], deadline: Duration) -> Result<CommandOutput, ProbeError> {
        run_command(&self.label(), argv, deadline)
    }

    fn in_net(&self, job: NetJob) -> Result<(), ProbeError> {
        job();
        Ok(())
    }
}
