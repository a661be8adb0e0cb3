//! Try-and-rollback of `/etc/network/interfaces` with the real ifupdown2 3.0 inside the lab's
//! own namespaces (LAB.md): `<p>-hv` plays the hypervisor, `<p>-gw` its gateway (10.0.0.1 on
//! a veth whose hv end is the uplink `enp6s0`). Needs root and the ifupdown2 that
//! `scripts/fetch-ifupdown2.sh` unpacks into `.tools/ifupdown2` (never installed: it would
//! replace the machine's ifupdown). Skips with a note without them, fails in CI.
//!
//! ifupdown2 runs as `ip netns exec <p>-hv unshare -m --propagation private sh -c WRAP …`: a
//! private mount namespace per command, in which WRAP (a fixed script; its only arguments are
//! the test's own scratch and tool paths, never config values) mounts an overlay over `/etc`
//! whose upper layer is the scratch `etc` (so the machine's `/etc` cannot change, and the
//! engine's `/etc/network/interfaces` and `/etc/phoenix/nat.nft` are what the tools read),
//! binds the scratch `run` and `var/tmp` over `/run` and `/var/tmp` (ifupdown2's lock and
//! state; iptables' lock) and the unpacked `etc/network/ifupdown2` over
//! `/etc/network/ifupdown2`. The mounts vanish with the process. The switch's file operations
//! go to the same scratch tree ([`LocalShell`] rooted there).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nstest;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nstest::*;
use phoenix_exec::shell::{CommandOutput, HostFile, HostShell, LocalShell, ShellError};
use phoenix_pve::netswitch::{
    Confirm, Probe, RollbackCause, Side, Switch, SwitchError, SwitchOutcome, SwitchReport, argv,
    confirm_flag_path, run_switch,
};

const INTERFACES: &str = "/etc/network/interfaces";
const MGMT: &str = "10.0.0.13";
const GATEWAY: &str = "10.0.0.1";

/// Mounts for one command on the hypervisor; `$1` scratch root, `$2` unpacked ifupdown2, `$3`
/// the overlay's work dir (one per command: probes run concurrently, and overlayfs refuses a
/// work dir another mount uses), then argv. The scratch `etc` is the overlay's upper layer:
/// the engine's files (written there between commands) appear under `/etc`.
const WRAP: &str = r#"set -e
root=$1; tools=$2; work=$3; shift 3
mount -t overlay phoenix-lab -o "lowerdir=/etc,upperdir=$root/etc,workdir=$work" /etc
mount --bind "$tools/etc/network/ifupdown2" /etc/network/ifupdown2
mount --bind "$root/run" /run
mount --bind "$root/var/tmp" /var/tmp
exec "$@"
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The unpacked ifupdown2, or `None` (with a note) when this machine cannot run the test.
fn ifupdown2() -> Option<PathBuf> {
    let tools = repo().join(".tools/ifupdown2");
    let ok = tools.join("usr/share/ifupdown2/__main__.py").is_file();
    if std::env::var_os("CI").is_some() {
        assert!(is_root(), "CI runs the lab tests as root");
        assert!(
            ok,
            "{} is missing: run scripts/fetch-ifupdown2.sh (scripts/setup.sh does)",
            tools.display()
        );
    }
    if !is_root() {
        eprintln!("note: not root; skipping the ifupdown2 try-and-rollback lab test");
        return None;
    }
    if !ok {
        eprintln!(
            "note: {} missing (scripts/fetch-ifupdown2.sh); skipping the lab test",
            tools.display()
        );
        return None;
    }
    Some(tools.canonicalize().unwrap())
}

/// The lab: two namespaces, a veth, a scratch tree. Dropping it deletes all of them.
struct Lab {
    prefix: String,
    scratch: tempfile::TempDir,
    tools: PathBuf,
}

impl Lab {
    fn new(tools: PathBuf) -> Lab {
        static N: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "nsw{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .unwrap();
        let lab = Lab {
            prefix,
            scratch,
            tools,
        };
        let s = lab.scratch.path();
        for d in [
            "root/etc/network/ifupdown2",
            "root/run/network",
            "root/var/tmp",
            "etc-work",
            "bin",
        ] {
            std::fs::create_dir_all(s.join(d)).unwrap();
        }
        // ifupdown2 picks its mode from argv[0]; python resolves the symlink for its imports.
        for name in ["ifreload", "ifquery", "ifup", "ifdown"] {
            std::os::unix::fs::symlink(
                lab.tools.join("usr/share/ifupdown2/__main__.py"),
                s.join("bin").join(name),
            )
            .unwrap();
        }
        let (hv, gw) = (lab.ns("hv"), lab.ns("gw"));
        for ns in [&hv, &gw] {
            // LAB.md: a lab resolver before anything runs in the namespace (nothing here
            // resolves names; the /etc overlay would catch a resolv.conf write anyway).
            let dir = PathBuf::from("/etc/netns").join(ns);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("resolv.conf"), "nameserver 198.18.0.53\n").unwrap();
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link", "add", "enp6s0", "netns", &hv, "type", "veth", "peer", "name", "eth0", "netns",
            &gw,
        ]);
        ip(&["-n", &gw, "addr", "add", "10.0.0.1/24", "dev", "eth0"]);
        ip(&["-n", &gw, "link", "set", "eth0", "up"]);
        lab
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// The hypervisor: files under the scratch root, commands in `<p>-hv` with the mounts.
    fn hv(&self) -> NetnsShell {
        NetnsShell {
            ns: self.ns("hv"),
            mounts: Some((self.scratch.path().join("root"), self.tools.clone())),
            bin: self.scratch.path().join("bin"),
            files: LocalShell::new(self.scratch.path().join("root")),
        }
    }

    /// The gateway's side: the observer probes run there.
    fn gw(&self) -> NetnsShell {
        NetnsShell {
            ns: self.ns("gw"),
            mounts: None,
            bin: self.scratch.path().join("bin"),
            files: LocalShell::new(self.scratch.path().join("gw-root")),
        }
    }

    fn addrs(&self) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.ns("hv"), "-br", "addr"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for role in ["hv", "gw"] {
            delete_netns(&self.ns(role));
        }
    }
}

/// Commands in a lab namespace (with the private mounts for the hypervisor); files under a
/// scratch root.
#[derive(Debug)]
struct NetnsShell {
    ns: String,
    /// (scratch root, unpacked ifupdown2): run through WRAP in a private mount namespace.
    mounts: Option<(PathBuf, PathBuf)>,
    bin: PathBuf,
    files: LocalShell,
}

impl NetnsShell {
    fn full_argv(&self, cmd: &[String]) -> Vec<String> {
        let mut out = argv(&["ip", "netns", "exec", &self.ns]);
        if let Some((root, tools)) = &self.mounts {
            static WORK: AtomicU32 = AtomicU32::new(0);
            let work = root
                .join("../etc-work")
                .join(WORK.fetch_add(1, Ordering::Relaxed).to_string());
            std::fs::create_dir_all(&work).unwrap();
            out.extend(argv(&[
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
            ]));
            out.push(WRAP.to_string());
            out.push("sh".into());
            out.push(root.display().to_string());
            out.push(tools.display().to_string());
            out.push(work.display().to_string());
        }
        match cmd.first().map(String::as_str) {
            // The unpacked scripts are not executable and not at /usr/share/ifupdown2.
            Some(tool @ ("ifreload" | "ifquery" | "ifup" | "ifdown")) => {
                out.push("python3".into());
                out.push(self.bin.join(tool).display().to_string());
                out.extend(cmd[1..].iter().cloned());
            }
            _ => out.extend(cmd.iter().cloned()),
        }
        out
    }
}

impl HostShell for NetnsShell {
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
        self.files.run(&self.full_argv(cmd), deadline)
    }
}

/// The production render for examples/homelab minus what this kernel lacks (LAB.md): the
/// VLAN-aware bridge options and the `vmbr0.20` VLAN device.
fn homelab_interfaces() -> String {
    let dir = repo().join("examples/homelab");
    let desired = phoenix_model::validate_dir(&dir)
        .desired
        .expect("examples/homelab builds");
    let full = phoenix_render::hostnet::interfaces(&desired).content;
    let text = full
        .split("\n\n")
        .filter(|stanza| !stanza.contains("vlan-raw-device"))
        .map(|stanza| {
            stanza
                .lines()
                .filter(|l| {
                    let l = l.trim_start();
                    !l.starts_with("bridge-vlan-aware") && !l.starts_with("bridge-vids")
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    assert!(text.contains("iface enp6s0 inet manual"), "{text}");
    assert!(text.contains(&format!("address {MGMT}/24")), "{text}");
    assert!(text.contains(&format!("gateway {GATEWAY}")), "{text}");
    assert!(text.contains("auto vmbr100"), "{text}");
    format!("{}\n", text.trim_end())
}

fn probes() -> Vec<Probe> {
    vec![
        Probe::ping("gateway reachable", GATEWAY, Side::Host),
        Probe::ping("management reachable", MGMT, Side::Observer),
        // An extra probe: the mesh address answers on the node.
        Probe::ping("mesh address up", "172.16.100.1", Side::Host),
    ]
}

fn interfaces_switch(deadline: Duration) -> Switch {
    let mut sw = Switch::interfaces()
        .with_probes(probes())
        .with_probe_deadline(deadline);
    sw.command_timeout = Duration::from_secs(30);
    sw.probe_interval = Duration::from_millis(200);
    sw
}

/// Apply the lab-compatible homelab file from a bare loopback-only file; asserts it switched.
fn apply_homelab(lab: &Lab, hv: &NetnsShell, gw: &NetnsShell) -> SwitchReport {
    hv.write_file(INTERFACES, &root_file("auto lo\niface lo inet loopback\n"))
        .unwrap();
    hv.stage_file(INTERFACES, &root_file(&homelab_interfaces()))
        .unwrap();
    let r = run_switch(hv, gw, &interfaces_switch(Duration::from_secs(10))).unwrap();
    print_report("homelab", &r);
    assert_eq!(
        r.outcome,
        SwitchOutcome::Switched { confirmed: false },
        "{r:#?}"
    );
    let addrs = lab.addrs();
    assert!(addrs.contains(&format!("{MGMT}/24")), "{addrs}");
    assert!(addrs.contains("172.16.100.1/24"), "{addrs}");
    r
}

fn ifquery_check(hv: &NetnsShell) -> CommandOutput {
    hv.run(&argv(&["ifquery", "-c", "-a"]), Duration::from_secs(30))
        .unwrap()
}

#[test]
fn good_interfaces_switch_and_ifquery_confirms() {
    let Some(tools) = ifupdown2() else { return };
    let lab = Lab::new(tools);
    let (hv, gw) = (lab.hv(), lab.gw());
    let r = apply_homelab(&lab, &hv, &gw);
    assert!(r.probes.iter().all(|p| p.passed), "{:#?}", r.probes);
    for p in &r.probes {
        eprintln!(
            "  probe {:<22} passed after {} attempt(s), {}ms",
            p.name,
            p.attempts,
            p.took.as_millis()
        );
    }
    let q = ifquery_check(&hv);
    assert_eq!(q.status, 0, "{}{}", q.stdout, q.stderr);
    assert!(q.stdout.contains("[pass]") && !q.stdout.contains("[fail]"));
    // The post-up lines ran inside the namespace: its own iptables got the masquerade.
    let nat = hv
        .run(
            &argv(&["iptables", "-t", "nat", "-S"]),
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(
        nat.stdout
            .contains("-s 172.16.100.0/24 -o vmbr0 -j MASQUERADE"),
        "{}",
        nat.stdout
    );
    assert_eq!(
        hv.read_file("/etc/network/interfaces.phoenix-previous")
            .unwrap()
            .unwrap()
            .content,
        "auto lo\niface lo inet loopback\n"
    );
    // The journal form.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["outcome"]["outcome"], "switched");
}

#[test]
fn broken_interfaces_are_rolled_back_and_connectivity_returns() {
    let Some(tools) = ifupdown2() else { return };
    let lab = Lab::new(tools);
    let (hv, gw) = (lab.hv(), lab.gw());
    apply_homelab(&lab, &hv, &gw);

    // The management address moved to a subnet the gateway is not on.
    let broken = homelab_interfaces()
        .replace(&format!("address {MGMT}/24"), "address 10.0.9.13/24")
        .replace(&format!("gateway {GATEWAY}"), "gateway 10.0.9.1");
    hv.stage_file(INTERFACES, &root_file(&broken)).unwrap();
    let deadline = Duration::from_secs(3);
    let t = Instant::now();
    let r = run_switch(&hv, &gw, &interfaces_switch(deadline)).unwrap();
    print_report("broken", &r);
    let SwitchOutcome::RolledBack {
        cause,
        probes_after,
        recovered,
    } = &r.outcome
    else {
        panic!("{r:#?}")
    };
    let RollbackCause::Probes { failed } = cause else {
        panic!("{cause:?}")
    };
    eprintln!("  cause: {cause}");
    assert!(
        failed.contains(&"gateway reachable".to_string()),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"management reachable".to_string()),
        "{failed:?}"
    );
    assert!(*recovered, "{probes_after:#?}");
    let back = probes_after.iter().map(|p| p.took).max().unwrap();
    eprintln!(
        "  connectivity back {}ms after the rollback reload; whole switch {:.2}s",
        back.as_millis(),
        t.elapsed().as_secs_f64()
    );
    assert!(
        back < deadline,
        "connectivity must return within the probe deadline"
    );
    // The node is as before: old file live, ifquery agrees, the rejected file staged again.
    assert_eq!(
        hv.read_file(INTERFACES).unwrap().unwrap().content,
        homelab_interfaces()
    );
    assert_eq!(
        hv.read_file("/etc/network/interfaces.new")
            .unwrap()
            .unwrap()
            .content,
        broken
    );
    let addrs = lab.addrs();
    assert!(addrs.contains(&format!("{MGMT}/24")), "{addrs}");
    assert!(!addrs.contains("10.0.9.13"), "{addrs}");
    let q = ifquery_check(&hv);
    assert_eq!(q.status, 0, "{}{}", q.stdout, q.stderr);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["outcome"]["cause"]["kind"], "probes");
}

#[test]
fn unconfirmed_switch_is_rolled_back_and_confirmed_one_stays() {
    let Some(tools) = ifupdown2() else { return };
    let lab = Lab::new(tools);
    let (hv, gw) = (lab.hv(), lab.gw());
    apply_homelab(&lab, &hv, &gw);

    // A good change (one more bridge) that nobody confirms.
    let extra = format!(
        "{}\nauto vmbr101\niface vmbr101 inet static\n\taddress 10.101.0.1/24\n\tbridge-ports none\n\tbridge-stp off\n\tbridge-fd 0\n",
        homelab_interfaces()
    );
    hv.stage_file(INTERFACES, &root_file(&extra)).unwrap();
    let id = phoenix_pve::netswitch::switch_id(INTERFACES, &extra);
    let flag = confirm_flag_path(&id);
    let window = Duration::from_millis(1500);
    let sw = interfaces_switch(Duration::from_secs(10)).with_confirm(Confirm::Within {
        window,
        flag: flag.clone(),
    });
    let r = run_switch(&hv, &gw, &sw).unwrap();
    print_report("unconfirmed", &r);
    assert_eq!(r.id, id);
    let SwitchOutcome::RolledBack {
        cause, recovered, ..
    } = &r.outcome
    else {
        panic!("{r:#?}")
    };
    assert!(
        matches!(cause, RollbackCause::NotConfirmed { .. }),
        "{cause:?}"
    );
    assert!(*recovered);
    assert!(r.probes.iter().all(|p| p.passed), "probes passed before");
    let addrs = lab.addrs();
    assert!(!addrs.contains("vmbr101"), "ifreload removed it: {addrs}");
    let q = ifquery_check(&hv);
    assert_eq!(q.status, 0, "{}{}", q.stdout, q.stderr);

    // Again (the rollback staged it again); the operator confirms 500 ms after the window
    // opens, as `phoenix sync confirm ID` would from another terminal.
    let t = Instant::now();
    let (opened, wait) = std::sync::mpsc::channel::<Instant>();
    let confirmed_sw = sw.clone().with_confirm(Confirm::Within {
        window: Duration::from_secs(10),
        flag: flag.clone(),
    });
    let (r, confirmed_at) = std::thread::scope(|s| {
        let (hv_ref, flag_ref) = (&hv, &flag);
        let confirmer = s.spawn(move || {
            let opened_at = wait.recv().unwrap();
            std::thread::sleep(Duration::from_millis(500));
            hv_ref.write_file(flag_ref, &root_file("")).unwrap();
            opened_at.elapsed()
        });
        let r = phoenix_pve::netswitch::run_switch_with(&hv, &gw, &confirmed_sw, &mut |step| {
            if step.step == "await confirmation" {
                eprintln!("  {}", step.detail);
                opened.send(Instant::now()).unwrap();
            }
        })
        .unwrap();
        (r, confirmer.join().unwrap())
    });
    print_report("confirmed", &r);
    assert_eq!(
        r.outcome,
        SwitchOutcome::Switched { confirmed: true },
        "{r:#?}"
    );
    assert!(lab.addrs().contains("10.101.0.1/24"));
    assert!(hv.read_file(&flag).unwrap().is_none(), "flag consumed");
    eprintln!(
        "  confirmed {}ms into the window; switch took {:.2}s",
        confirmed_at.as_millis(),
        t.elapsed().as_secs_f64()
    );
}

/// The NAT preset in the hypervisor namespace: `nft -c -f` before, `nft -f` to apply, the
/// previous file (or deleting the table) to roll back.
#[test]
fn nat_ruleset_switch_and_rollback() {
    let Some(tools) = ifupdown2() else { return };
    let lab = Lab::new(tools);
    let (hv, gw) = (lab.hv(), lab.gw());
    apply_homelab(&lab, &hv, &gw);

    let dir = repo().join("examples/homelab");
    let desired = phoenix_model::validate_dir(&dir).desired.unwrap();
    let rendered = phoenix_render::hostnet::nat_ruleset(&desired);
    let (path, table) = (rendered.path.as_str(), phoenix_render::hostnet::NAT_TABLE);
    let good = rendered.content.clone();
    // Loads and passes `nft -c`, but drops everything the node sends.
    let broken = format!(
        "{good}\ntable ip {table} {{\n\tchain output {{\n\t\ttype filter hook output priority filter; policy drop;\n\t}}\n}}\n"
    );
    let mut sw = Switch::nat(path, table)
        .with_probes([
            Probe::command(
                "nat table loaded",
                argv(&["nft", "list", "table", "ip", table]),
                Side::Host,
            )
            // With no previous file there is no table after a rollback.
            .only_after_switch(),
            Probe::ping("gateway reachable", GATEWAY, Side::Host),
            Probe::ping("management reachable", MGMT, Side::Observer),
        ])
        .with_probe_deadline(Duration::from_secs(3));
    sw.probe_interval = Duration::from_millis(200);
    let tables = || {
        hv.run(&argv(&["nft", "list", "tables"]), Duration::from_secs(10))
            .unwrap()
            .stdout
    };
    let output_chain = || {
        hv.run(
            &argv(&["nft", "list", "table", "ip", table]),
            Duration::from_secs(10),
        )
        .unwrap()
        .stdout
        .contains("chain output")
    };

    // 1. No previous file: the rollback deletes the table.
    hv.stage_file(path, &root_file(&broken)).unwrap();
    let r = run_switch(&hv, &gw, &sw).unwrap();
    print_report("nat broken, no previous", &r);
    assert!(
        matches!(
            &r.outcome,
            SwitchOutcome::RolledBack {
                recovered: true,
                cause: RollbackCause::Probes { .. },
                ..
            }
        ),
        "{r:#?}"
    );
    assert!(hv.read_file(path).unwrap().is_none());
    assert!(!tables().contains(table), "{}", tables());

    // 2. The rendered ruleset.
    hv.stage_file(path, &root_file(&good)).unwrap();
    let r = run_switch(&hv, &gw, &sw).unwrap();
    print_report("nat good", &r);
    assert_eq!(
        r.outcome,
        SwitchOutcome::Switched { confirmed: false },
        "{r:#?}"
    );
    assert!(tables().contains(table) && !output_chain());

    // 3. Broken over good: the previous file is loaded again.
    hv.stage_file(path, &root_file(&broken)).unwrap();
    let r = run_switch(&hv, &gw, &sw).unwrap();
    print_report("nat broken", &r);
    let SwitchOutcome::RolledBack {
        cause, recovered, ..
    } = &r.outcome
    else {
        panic!("{r:#?}")
    };
    eprintln!("  cause: {cause}");
    assert!(*recovered);
    assert!(tables().contains(table) && !output_chain());
    assert_eq!(hv.read_file(path).unwrap().unwrap().content, good);

    // 4. A ruleset nft refuses never reaches the node's live file.
    hv.stage_file(
        path,
        &root_file("table ip phoenix_nat { chain x { nonsense } }\n"),
    )
    .unwrap();
    let e = run_switch(&hv, &gw, &sw).unwrap_err();
    eprintln!("  invalid: {e}");
    assert!(matches!(e, SwitchError::Invalid { .. }), "{e}");
    assert_eq!(hv.read_file(path).unwrap().unwrap().content, good);
}
