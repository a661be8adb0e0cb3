//! Network-namespace endpoints: [`NetnsEndpoint`] opens sockets inside `/run/netns/<ns>` on a
//! dedicated std thread that calls `setns(CLONE_NEWNET)` (setns changes only the calling
//! thread, so the job and every socket it opens live on that thread, which then exits), and
//! runs commands through `ip netns exec NS argv…`. [`NetnsTarget`] maps subjects to namespace
//! names, which is all the lab needs to hand the probes. Does I/O: namespaces, processes.
//! See setns(2) and ip-netns(8).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use crate::endpoint::{CommandOutput, Endpoint, NetJob, ProbeTarget, run_command};
use crate::error::ProbeError;
use crate::report::Subject;

/// A named network namespace under `/run/netns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsEndpoint {
    pub ns: String,
}

impl NetnsEndpoint {
    pub fn new(ns: impl Into<String>) -> Self {
        NetnsEndpoint { ns: ns.into() }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.ns)
    }
}

impl Endpoint for NetnsEndpoint {
    fn label(&self) -> String {
        format!("netns {}", self.ns)
    }

    fn run(&self, argv: &[&str], deadline: Duration) -> Result<CommandOutput, ProbeError> {
        if argv.is_empty() {
            return Err(ProbeError::EmptyCommand);
        }
        let mut full = vec!["ip", "netns", "exec", self.ns.as_str()];
        full.extend_from_slice(argv);
        run_command(&self.label(), &full, deadline)
    }

    fn in_net(&self, job: NetJob) -> Result<(), ProbeError> {
        let path = self.path();
        // Open the handle before spawning so a missing namespace is a plain error here.
        let handle = File::open(&path).map_err(|source| ProbeError::OpenNamespace {
            path: path.clone(),
            source,
        })?;
        let ns = self.ns.clone();
        let h = thread::Builder::new()
            .name(format!("netns-{}", self.ns))
            .spawn(move || -> Result<(), ProbeError> {
                setns(&handle, CloneFlags::CLONE_NEWNET)
                    .map_err(|source| ProbeError::Setns { ns, source })?;
                drop(handle);
                job();
                Ok(())
            })
            .map_err(|source| ProbeError::Spawn {
                endpoint: self.label(),
                source,
            })?;
        h.join().map_err(|_| ProbeError::ThreadDied {
            endpoint: self.label(),
        })?
    }
}

/// Subjects → namespace names.
#[derive(Debug, Clone, Default)]
pub struct NetnsTarget {
    pub namespaces: BTreeMap<Subject, String>,
}

impl NetnsTarget {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, subject: Subject, ns: impl Into<String>) -> Self {
        self.namespaces.insert(subject, ns.into());
        self
    }
}

impl ProbeTarget for NetnsTarget {
    fn endpoint(&self, subject: &Subject) -> Result<Box<dyn Endpoint>, ProbeError> {
        self.namespaces
            .get(subject)
            .map(|ns| Box::new(NetnsEndpoint::new(ns.clone())) as Box<dyn Endpoint>)
            .ok_or_else(|| ProbeError::NoEndpoint {
                subject: subject.to_string(),
            })
    }
}
