//! `phoenix verify --target pve`: connects as `status --target pve` does, runs
//! `phoenix_pve::verify` (read-only) and prints its report like the lab's (text table or JSON
//! keeping every check; exit 1 on any failed check). A write request or a file written on the
//! node during the run is reported as a bug and fails the run.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Instant;

use phoenix_exec::shell::files::CountingShell;
use phoenix_pve::verify::{Deadlines, Family, NodeVerify, verify};

use crate::cli::{OutputFormat, VerifyArgs, VerifyFamily};
use crate::exit;
use crate::session::connect;

fn error(msg: &str, hint: &str) -> u8 {
    crate::failure::error(msg, hint);
    exit::FAILED
}

fn family(f: VerifyFamily) -> Family {
    match f {
        VerifyFamily::Guests => Family::Guests,
        VerifyFamily::Dns => Family::Dns,
        VerifyFamily::Tls => Family::Tls,
        VerifyFamily::Route => Family::Route,
        VerifyFamily::Swarm => Family::Swarm,
    }
}

pub fn run(args: &VerifyArgs) -> u8 {
    let session = match connect(&args.config, &args.pve) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let root_pem = match &args.ca_dir {
        None => Err("no --ca-dir: the chain to phoenix's root is not checked".to_string()),
        Some(dir) => match phoenix_pki::CaPublic::load(dir) {
            Ok(ca) => Ok(ca.root_pem().to_string()),
            Err(e) => {
                let _ = error(
                    &format!("CA directory {}: {e}", dir.display()),
                    "pass the directory `phoenix ca init` made, or leave --ca-dir out",
                );
                return exit::USAGE;
            }
        },
    };
    // The client certificate as `swarm` finds it: --docker-cert-path, else <--ca-dir>/engine-client.
    let engines = match phoenix_plan::swarm::desired(&session.desired) {
        None => Err("the configuration has no Swarm".to_string()),
        Some(desired) => match crate::swarm_cmd::engine_client_dir(
            args.docker_cert_path.as_deref(),
            args.ca_dir.as_deref(),
        ) {
            Err((what, _)) => Err(format!("{what}: the Swarm is not checked")),
            Ok(certs) => Ok(crate::swarm_cmd::pve_engines(
                &desired,
                args.docker_host.as_deref(),
                &certs,
            )),
        },
    };
    let families: BTreeSet<Family> = if args.only.is_empty() {
        Family::ALL.into_iter().collect()
    } else {
        args.only.iter().copied().map(family).collect()
    };
    let shell = CountingShell::new(session.shell.as_ref());
    let node = session.opts.node.clone();
    let progress = crate::progress::Progress::new();
    progress.step(format!(
        "verifying node {node}: guests, DNS, TLS, routes, Swarm (read-only)"
    ));
    let start = Instant::now();
    let report = verify(&NodeVerify {
        d: &session.desired,
        client: &session.client,
        shell: &shell,
        root_pem,
        engines,
        deadlines: Deadlines::default(),
        families,
    });
    progress.finish();
    let body = match args.output {
        OutputFormat::Json => match crate::jsonout::print("verify", &report) {
            Ok(()) => String::new(),
            Err(e) => return error(&format!("cannot write the report: {e}"), "a bug"),
        },
        OutputFormat::Text => report.render_text_with(&crate::verify_text::options(args)),
    };
    let _ = write!(std::io::stdout(), "{body}");
    let counts = session.client.counts();
    let _ = writeln!(
        anstream::stderr(),
        "verify pve {node}: {} in {} ms, {}",
        crate::report::count(report.results.len(), "check"),
        start.elapsed().as_millis(),
        crate::report::count(counts.requests as usize, "API request")
    );
    if counts.writes != 0 || shell.writes() != 0 {
        return error(
            &format!(
                "verify made {} and wrote {} on the node",
                crate::report::count(counts.writes as usize, "write request"),
                crate::report::count(shell.writes(), "file")
            ),
            "this is a bug: verify is read-only",
        );
    }
    if report.ok() { exit::OK } else { exit::FAILED }
}
