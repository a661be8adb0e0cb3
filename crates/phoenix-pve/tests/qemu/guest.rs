//! Inside the guest: the node's interfaces switch over a `LocalShell` at `/`, and the traffic
//! rounds the host watches. Everything is recorded into `report.json` on the share.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use phoenix_exec::shell::{HostShell, LocalShell};
use phoenix_pve::netswitch::{Probe, Side, Switch, SwitchReport, argv, run_switch};
use phoenix_verify::endpoint::with_net;
use phoenix_verify::netns::NetnsEndpoint;
use serde_json::{Value, json};

use super::*;
use crate::nstest::{print_report, root_file};

/// One UDP exchange: send `msg` from `bind` to `to` until an answer arrives or `deadline`.
fn exchange(bind: SocketAddr, to: SocketAddr, msg: &str, deadline: Duration) -> Value {
    let start = Instant::now();
    let sock = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => return json!({ "to": to.to_string(), "error": format!("bind {bind}: {e}") }),
    };
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 512];
    let mut sent = 0;
    while start.elapsed() < deadline {
        if sock.send_to(msg.as_bytes(), to).is_ok() {
            sent += 1;
        }
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            return json!({
                "to": to.to_string(), "sent": sent, "from": from.to_string(),
                "answer": String::from_utf8_lossy(&buf[..n]),
                "ms": start.elapsed().as_millis() as u64,
            });
        }
    }
    json!({ "to": to.to_string(), "sent": sent, "error": "no answer before the deadline" })
}

/// Send `msg` three times from `bind` to `to` (no answer expected).
fn send_only(bind: SocketAddr, to: SocketAddr, msg: &str) -> Value {
    let sent = UdpSocket::bind(bind).and_then(|sock| {
        let mut n = 0;
        for _ in 0..3 {
            sock.send_to(msg.as_bytes(), to)?;
            n += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(n)
    });
    match sent {
        Ok(n) => json!({ "to": to.to_string(), "sent": n }),
        Err(e) => json!({ "to": to.to_string(), "error": e.to_string() }),
    }
}

/// `ip ARGS…` in the guest, its status and output recorded.
fn guest_ip(shell: &LocalShell, args: &[&str]) -> Value {
    let mut cmd = vec!["ip"];
    cmd.extend_from_slice(args);
    command(shell, &cmd)
}

fn command(shell: &LocalShell, cmd: &[&str]) -> Value {
    match shell.run(&argv(cmd), Duration::from_secs(60)) {
        Ok(o) => json!({ "argv": cmd, "status": o.status, "stdout": o.stdout, "stderr": o.stderr }),
        Err(e) => json!({ "argv": cmd, "error": e.to_string() }),
    }
}

/// A round of traffic: a frame out of `vmbr0.20`, and a mesh guest's datagram through the NAT.
fn traffic_round(shell: &LocalShell, round: &str) -> Value {
    let mut setup = Vec::new();
    let g20 = format!("{GUEST_VLAN20}/24");
    let lab20 = LAB_VLAN20.to_string();
    setup.push(guest_ip(shell, &["addr", "add", &g20, "dev", "vmbr0.20"]));
    // Nothing answers ARP on VLAN 20 (this machine's kernel has no 802.1Q): the lab's MAC is
    // given, so the datagrams themselves leave, tagged.
    setup.push(guest_ip(
        shell,
        &[
            "neigh",
            "replace",
            &lab20,
            "lladdr",
            LAB_MAC,
            "dev",
            "vmbr0.20",
            "nud",
            "permanent",
        ],
    ));
    let vlan = send_only(
        SocketAddr::new(IpAddr::V4(GUEST_VLAN20), 0),
        SocketAddr::new(IpAddr::V4(LAB_VLAN20), VLAN_PORT),
        &format!("{round} vlan20 from {GUEST_VLAN20}"),
    );
    setup.push(guest_ip(
        shell,
        &["neigh", "del", &lab20, "dev", "vmbr0.20"],
    ));
    setup.push(guest_ip(shell, &["addr", "del", &g20, "dev", "vmbr0.20"]));

    // A mesh guest: a namespace whose veth port is on vmbr100, as a container's would be.
    let mesh = format!("{MESH_GUEST}/24");
    let gw = MESH_GATEWAY.to_string();
    for args in [
        &["netns", "add", "mesh"][..],
        &[
            "link", "add", "meshp", "type", "veth", "peer", "name", "eth0", "netns", "mesh",
        ],
        &["link", "set", "meshp", "master", "vmbr100", "up"],
        &["-n", "mesh", "link", "set", "lo", "up"],
        &["-n", "mesh", "addr", "add", &mesh, "dev", "eth0"],
        &["-n", "mesh", "link", "set", "eth0", "up"],
        &["-n", "mesh", "route", "add", "default", "via", &gw],
    ] {
        setup.push(guest_ip(shell, args));
    }
    let msg = format!("{round} nat from {MESH_GUEST}");
    let nat = with_net(&NetnsEndpoint::new("mesh"), move || {
        exchange(
            SocketAddr::new(IpAddr::V4(MESH_GUEST), 0),
            SocketAddr::new(IpAddr::V4(GATEWAY), NAT_PORT),
            &msg,
            Duration::from_secs(30),
        )
    })
    .unwrap_or_else(|e| json!({ "error": e.to_string() }));
    // The mesh guest goes again: `ifquery -c` compares the bridges with the file exactly.
    setup.push(guest_ip(shell, &["netns", "del", "mesh"]));
    json!({ "round": round, "vlan20": vlan, "nat": nat, "setup": setup })
}

fn guest_switch() -> Switch {
    let mut sw = Switch::interfaces()
        .with_probes([
            Probe::ping("gateway reachable", GATEWAY, Side::Host),
            Probe::ping("mesh address up", MESH_GATEWAY, Side::Host),
        ])
        .with_probe_deadline(Duration::from_secs(30));
    // ifupdown2 under a software CPU is slow.
    sw.command_timeout = Duration::from_secs(180);
    sw.probe_interval = Duration::from_millis(500);
    sw
}

fn switch_json(r: &Result<SwitchReport, phoenix_pve::netswitch::SwitchError>) -> Value {
    match r {
        Ok(r) => {
            print_report("switch", r);
            let mut v = serde_json::to_value(r).unwrap();
            if let phoenix_pve::netswitch::SwitchOutcome::RolledBack { cause, .. } = &r.outcome {
                v["cause_text"] = json!(cause.to_string());
            }
            v
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// The guest side: switch, traffic, broken switch, traffic; the report to the share.
pub fn run() {
    let share = Path::new(SHARE);
    let job: Job = serde_json::from_str(
        &std::fs::read_to_string(share.join("job.json"))
            .expect("no /mnt/phoenix/job.json: this runs only inside the QEMU guest"),
    )
    .unwrap();
    let shell = LocalShell::new("/");
    let mut report = serde_json::Map::new();

    // The NIC gets the node's uplink name (the guest's own name depends on its PCI slot).
    let nic = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .find(|e| {
            std::fs::read_to_string(e.path().join("address"))
                .is_ok_and(|a| a.trim() == job.uplink_mac)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("the guest has the NIC with the job's MAC");
    report.insert(
        "rename".into(),
        guest_ip(&shell, &["link", "set", "dev", &nic, "name", &job.uplink]),
    );
    report.insert("kernel".into(), command(&shell, &["uname", "-r"]));

    // A bare node: loopback only, then the seed's file through the staged switch.
    shell
        .write_file(INTERFACES, &root_file("auto lo\niface lo inet loopback\n"))
        .unwrap();
    shell.stage_file(INTERFACES, &root_file(&job.good)).unwrap();
    let first = run_switch(&shell, &shell, &guest_switch());
    report.insert("switch".into(), switch_json(&first));
    report.insert(
        "vlans".into(),
        command(&shell, &["bridge", "-d", "vlan", "show"]),
    );
    report.insert(
        "vlan_device".into(),
        guest_ip(&shell, &["-d", "link", "show", "vmbr0.20"]),
    );
    report.insert(
        "nat_rules".into(),
        command(&shell, &["iptables", "-t", "nat", "-S", "POSTROUTING"]),
    );
    report.insert(
        "addresses".into(),
        guest_ip(&shell, &["-4", "-br", "addr", "show"]),
    );
    report.insert("round1".into(), traffic_round(&shell, "round1"));

    // The broken file: the same switch must put the seed's file back.
    shell
        .stage_file(INTERFACES, &root_file(&job.broken))
        .unwrap();
    let second = run_switch(&shell, &shell, &guest_switch());
    report.insert("broken_switch".into(), switch_json(&second));
    report.insert(
        "live_after_rollback".into(),
        json!(shell.read_file(INTERFACES).unwrap().map(|f| f.content)),
    );
    report.insert(
        "addresses_after_rollback".into(),
        guest_ip(&shell, &["-4", "-br", "addr", "show"]),
    );
    report.insert(
        "ifquery_after_rollback".into(),
        command(&shell, &["ifquery", "-c", "-a"]),
    );
    report.insert("round2".into(), traffic_round(&shell, "round2"));

    std::fs::write(
        share.join("report.json"),
        serde_json::to_string_pretty(&Value::Object(report)).unwrap(),
    )
    .unwrap();
}
