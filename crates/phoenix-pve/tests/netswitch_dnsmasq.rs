//! Try-and-rollback of the dnsmasq file with the real dnsmasq inside the test's own network
//! namespaces (LAB.md safety rules): `<p>-dns` plays the node (dnsmasq on 172.16.100.1:53),
//! `<p>-cli` a client on the same segment (the observer side: it asks dnsmasq a name). Nothing
//! leaves the two namespaces; every run has its own prefix, and a guard kills the dnsmasq it
//! started (by pid, from its pid file and the namespace's pid list) and deletes the namespaces
//! and their `/etc/netns` dirs even when an assertion fails.
//!
//! The switch is phoenix's [`Switch::dnsmasq`] (`dnsmasq --test` first) with the reload a
//! fixed script that restarts the namespace's dnsmasq on the live file; files live in a
//! scratch directory (absolute paths, so `dnsmasq --test --conf-file=…` reads the staged
//! file). A good file switches and dnsmasq answers with its record; a file `dnsmasq --test`
//! refuses never goes live; a file that passes `--test` but answers nothing on port 53 (the
//! probe fails) and one whose dnsmasq cannot start (the reload fails) are rolled back, and the
//! previous file answers again. Needs root and dnsmasq; skips with a note without them, fails
//! in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nstest;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nstest::*;
use phoenix_exec::shell::{CommandOutput, HostFile, HostShell, LocalShell, ShellError};
use phoenix_pve::netswitch::{
    Probe, RollbackCause, Side, Switch, SwitchError, SwitchOutcome, argv, run_switch,
};

const SERVER: &str = "172.16.100.1";
const CLIENT: &str = "172.16.100.50";
const NAME: &str = "probe.lab.internal";

/// Restart the namespace's dnsmasq on the live file: `$1` pid file, `$2` live file, `$3` log.
/// Only paths are passed; the configuration never goes through a shell.
const RESTART: &str = r#"set -u
pid=$1; conf=$2; log=$3
if [ -s "$pid" ]; then
  old=$(cat "$pid")
  kill "$old" 2>/dev/null
  i=0
  while kill -0 "$old" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  rm -f "$pid"
fi
[ -f "$conf" ] || exit 0
exec dnsmasq --conf-file="$conf" --pid-file="$pid" --log-facility="$log"
"#;

/// One DNS A query over UDP: `$1` server, `$2` name, `$3` expected address (optional). Exits 0
/// with the first address on stdout when there is an answer (and it is the expected one).
const QUERY: &str = r#"
import random, socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
want = sys.argv[3] if len(sys.argv) > 3 else None
qid = random.randrange(65536)
q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
q += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\0'
q += struct.pack('>HH', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
try:
    s.sendto(q, (server, 53))
    r, _ = s.recvfrom(4096)
except OSError as e:
    print('no answer:', e, file=sys.stderr); sys.exit(1)
rid, flags, qd, an = struct.unpack('>HHHH', r[:8])
if rid != qid or an == 0:
    print('rcode', flags & 15, 'answers', an, file=sys.stderr); sys.exit(1)
i = 12 + len(q) - 12
while i < len(r):
    if r[i] & 0xC0 == 0xC0: i += 2
    else:
        while r[i]: i += r[i] + 1
        i += 1
    t, c, ttl, ln = struct.unpack('>HHIH', r[i:i + 10]); i += 10
    if t == 1 and ln == 4:
        addr = socket.inet_ntoa(r[i:i + 4]); print(addr)
        sys.exit(0 if want in (None, addr) else 1)
    i += ln
sys.exit(1)
"#;

/// Root and dnsmasq, or `false` with a note (a failure under CI).
fn lab_available() -> bool {
    let dnsmasq = Command::new("dnsmasq").arg("--version").output().is_ok();
    let python = Command::new("python3").arg("--version").output().is_ok();
    if std::env::var_os("CI").is_some() {
        assert!(is_root(), "CI runs the lab tests as root");
        assert!(dnsmasq && python, "CI installs dnsmasq and python3");
    }
    if !(is_root() && dnsmasq && python) {
        eprintln!("note: needs root, dnsmasq and python3; skipping the dnsmasq switch lab test");
        return false;
    }
    true
}

/// Two namespaces joined by a veth, a scratch directory; dropping it stops dnsmasq and
/// deletes everything.
struct Lab {
    prefix: String,
    scratch: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        static N: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "dnw{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .unwrap();
        // The guard exists before the first namespace: a failure below still tears down.
        let lab = Lab { prefix, scratch };
        std::fs::create_dir_all(lab.path("etc/dnsmasq.d")).unwrap();
        std::fs::write(lab.path("restart.sh"), RESTART).unwrap();
        std::fs::write(lab.path("query.py"), QUERY).unwrap();
        let (dns, cli) = (lab.ns("dns"), lab.ns("cli"));
        for ns in [&dns, &cli] {
            // LAB.md: a lab resolver before anything runs in the namespace.
            let dir = PathBuf::from("/etc/netns").join(ns);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("resolv.conf"), format!("nameserver {SERVER}\n")).unwrap();
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link", "add", "eth0", "netns", &dns, "type", "veth", "peer", "name", "eth0", "netns",
            &cli,
        ]);
        for (ns, addr) in [(&dns, SERVER), (&cli, CLIENT)] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        lab
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.scratch.path().join(rel)
    }

    fn live(&self) -> String {
        self.path("etc/dnsmasq.d/phoenix.conf")
            .display()
            .to_string()
    }

    fn shell(&self, role: &str) -> NsShell {
        NsShell {
            ns: self.ns(role),
            files: LocalShell::new("/"),
        }
    }

    /// The dnsmasq switch: `dnsmasq --test` on the staged file, the restart script as reload,
    /// the client's query as the probe.
    fn switch(&self) -> Switch {
        let s = |rel: &str| self.path(rel).display().to_string();
        let reload = vec![argv(&[
            "sh",
            &s("restart.sh"),
            &s("dnsmasq.pid"),
            &self.live(),
            &s("dnsmasq.log"),
        ])];
        let mut sw = Switch::dnsmasq(&self.live(), Some(reload))
            .with_probes([Probe::command(
                "dns answers",
                argv(&["python3", &s("query.py"), SERVER, NAME]),
                Side::Observer,
            )])
            .with_probe_deadline(Duration::from_secs(3));
        sw.probe_interval = Duration::from_millis(200);
        sw.command_timeout = Duration::from_secs(15);
        sw
    }

    /// What the client gets for [`NAME`] (`None`: no answer).
    fn answer(&self) -> Option<String> {
        let out = self
            .shell("cli")
            .run(
                &argv(&[
                    "python3",
                    &self.path("query.py").display().to_string(),
                    SERVER,
                    NAME,
                ]),
                Duration::from_secs(10),
            )
            .unwrap();
        (out.status == 0).then(|| out.stdout.trim().to_string())
    }

    /// Processes in one of the lab's namespaces.
    fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for role in ["dns", "cli"] {
            if let Ok(out) = Command::new("ip")
                .args(["netns", "pids", &self.ns(role)])
                .output()
            {
                pids.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
        pids
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Only what this lab started: the pids inside its own namespaces.
        let mut pids = self.pids();
        if let Ok(p) = std::fs::read_to_string(self.path("dnsmasq.pid"))
            && let Ok(p) = p.trim().parse::<u32>()
        {
            pids.push(p);
        }
        for pid in &pids {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        for _ in 0..50 {
            if self.pids().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for role in ["dns", "cli"] {
            delete_netns(&self.ns(role));
        }
    }
}

/// Commands in one lab namespace; files at their absolute paths (all in the scratch dir).
#[derive(Debug)]
struct NsShell {
    ns: String,
    files: LocalShell,
}

impl HostShell for NsShell {
    fn read_file(&self, path: &str) -> Result<Option<HostFile>, ShellError> {
        self.files.read_file(path)
    }
    fn write_file(&self, path: &str, file: &HostFile) -> Result<(), ShellError> {
        self.files.write_file(path, file)
    }
    fn remove_file(&self, path: &str) -> Result<(), ShellError> {
        self.files.remove_file(path)
    }
    fn run(&self, cmd: &[String], deadline: Duration) -> Result<CommandOutput, ShellError> {
        let mut full = argv(&["ip", "netns", "exec", &self.ns]);
        full.extend(cmd.iter().cloned());
        self.files.run(&full, deadline)
    }
}

/// A dnsmasq file serving [`NAME`] as `addr`, listening on `listen`:`port`.
fn conf(listen: &str, port: u16, addr: &str) -> String {
    format!(
        "# phoenix lab\nport={port}\nlisten-address={listen}\nbind-interfaces\nno-resolv\nno-hosts\n\
         user=root\nlocal=/lab.internal/\nhost-record={NAME},{addr}\n"
    )
}

fn content(shell: &NsShell, path: &str) -> Option<String> {
    shell.read_file(path).unwrap().map(|f| f.content)
}

#[test]
fn dnsmasq_switch_answers_and_broken_files_roll_back() {
    if !lab_available() {
        return;
    }
    let lab = Lab::new();
    let (node, client) = (lab.shell("dns"), lab.shell("cli"));
    let sw = lab.switch();
    let live = lab.live();
    assert_eq!(
        lab.answer(),
        None,
        "nothing answers before the first switch"
    );

    // 1. The first file (no previous one): switched, dnsmasq answers with its record.
    let first = conf(SERVER, 53, "172.16.100.42");
    node.stage_file(&live, &root_file(&first)).unwrap();
    let r = run_switch(&node, &client, &sw).unwrap();
    print_report("first", &r);
    assert_eq!(
        r.outcome,
        SwitchOutcome::Switched { confirmed: false },
        "{r:#?}"
    );
    assert_eq!(lab.answer().as_deref(), Some("172.16.100.42"));

    // 2. A good change: switched, the new record answers.
    let good = conf(SERVER, 53, "172.16.100.43");
    node.stage_file(&live, &root_file(&good)).unwrap();
    let r = run_switch(&node, &client, &sw).unwrap();
    print_report("good", &r);
    assert_eq!(
        r.outcome,
        SwitchOutcome::Switched { confirmed: false },
        "{r:#?}"
    );
    assert_eq!(lab.answer().as_deref(), Some("172.16.100.43"));
    assert_eq!(content(&node, &live).as_deref(), Some(good.as_str()));
    assert_eq!(
        content(&node, &format!("{live}.phoenix-previous")).as_deref(),
        Some(first.as_str()),
        "the replaced file is kept"
    );

    // 3. A file `dnsmasq --test` refuses: never live; the running dnsmasq is untouched.
    let invalid = format!("{good}no-such-option=1\n");
    node.stage_file(&live, &root_file(&invalid)).unwrap();
    let e = run_switch(&node, &client, &sw).unwrap_err();
    eprintln!("== invalid: {e}");
    assert!(matches!(e, SwitchError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("dnsmasq --test"), "{e}");
    assert_eq!(content(&node, &live).as_deref(), Some(good.as_str()));
    assert_eq!(lab.answer().as_deref(), Some("172.16.100.43"));
    node.remove_file(&format!("{live}.new")).unwrap();

    // 4. Passes --test, but dnsmasq answers on 5353 only: the probe fails, rolled back, the
    //    previous file answers again; the rejected file is staged again.
    let wrong_port = conf(SERVER, 5353, "172.16.100.44");
    node.stage_file(&live, &root_file(&wrong_port)).unwrap();
    let r = run_switch(&node, &client, &sw).unwrap();
    print_report("wrong port", &r);
    let SwitchOutcome::RolledBack {
        cause,
        recovered,
        probes_after,
    } = &r.outcome
    else {
        panic!("{r:#?}")
    };
    eprintln!("  cause: {cause}");
    assert!(
        matches!(cause, RollbackCause::Probes { failed } if failed == &["dns answers"]),
        "{cause:?}"
    );
    assert!(*recovered, "{probes_after:#?}");
    assert!(probes_after.iter().all(|p| p.passed));
    assert_eq!(lab.answer().as_deref(), Some("172.16.100.43"));
    assert_eq!(content(&node, &live).as_deref(), Some(good.as_str()));
    assert_eq!(
        content(&node, &format!("{live}.new")).as_deref(),
        Some(wrong_port.as_str())
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["outcome"]["cause"]["kind"], "probes");
    node.remove_file(&format!("{live}.new")).unwrap();

    // 5. Passes --test, but dnsmasq cannot start (an address the node does not have): the
    //    reload fails, rolled back, the previous file answers again.
    let no_addr = conf("172.16.100.99", 53, "172.16.100.45");
    node.stage_file(&live, &root_file(&no_addr)).unwrap();
    let r = run_switch(&node, &client, &sw).unwrap();
    print_report("unbindable", &r);
    let SwitchOutcome::RolledBack {
        cause, recovered, ..
    } = &r.outcome
    else {
        panic!("{r:#?}")
    };
    eprintln!("  cause: {cause}");
    assert!(matches!(cause, RollbackCause::Reload { .. }), "{cause:?}");
    assert!(*recovered);
    assert_eq!(lab.answer().as_deref(), Some("172.16.100.43"));
    assert_eq!(content(&node, &live).as_deref(), Some(good.as_str()));

    let prefix = lab.prefix.clone();
    let scratch: PathBuf = lab.scratch.path().to_path_buf();
    drop(lab);
    let listed = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!listed.contains(&prefix), "{listed}");
    assert!(!Path::new(&scratch).exists());
    assert!(
        !PathBuf::from("/etc/netns")
            .join(format!("{prefix}-dns"))
            .exists()
    );
}
