//! On the host: the peer check, the lab namespace holding the guest's tap, QEMU with the share
//! and the recorded wire, the UDP listener that answers the NAT datagrams, and the pcap reader.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phoenix_verify::endpoint::with_net;
use phoenix_verify::netns::NetnsEndpoint;

use super::*;
use crate::nstest::{delete_netns, ip, is_root};

/// The image directory, or `None` (with a note) when this machine cannot run the test.
pub fn peer() -> Option<PathBuf> {
    let image = Command::new("bash")
        .arg(repo().join("scripts/build-qemu-guest.sh"))
        .arg("--path")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if std::env::var_os("CI").is_some() {
        assert!(is_root(), "CI runs the namespace tests as root");
        assert!(
            qemu,
            "qemu-system-x86_64 missing: scripts/setup.sh installs it"
        );
        assert!(
            image.is_some(),
            "the QEMU guest image is not built: run scripts/build-qemu-guest.sh (scripts/setup.sh does)"
        );
    }
    if !is_root() {
        eprintln!("note: not root; skipping the QEMU host-network test");
        return None;
    }
    if !qemu || image.is_none() {
        eprintln!(
            "note: qemu-system-x86_64 or the guest image missing (scripts/build-qemu-guest.sh); skipping"
        );
        return None;
    }
    image
}

/// What a lab listener saw: the round (from the payload), the payload and the source.
#[derive(Debug, Clone)]
pub struct Seen {
    pub payload: String,
    pub from: SocketAddr,
}

/// A UDP listener in the lab namespace that answers every datagram with `seen SOURCE` and
/// records it, until `stop`.
pub fn listen(
    ns: &str,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::thread::JoinHandle<()> {
    let ep = NetnsEndpoint::new(ns);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        with_net(&ep, move || {
            let sock = UdpSocket::bind(addr).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let payload = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let _ = sock.send_to(format!("seen {from}").as_bytes(), from);
                    seen.lock().unwrap().push(Seen { payload, from });
                }
            }
        })
        .unwrap();
    });
    ready_rx.recv().unwrap();
    h
}

/// The lab namespace with the guest's tap, and the QEMU process. Dropping it kills QEMU (the
/// child this test started) and deletes the namespace.
pub struct Lab {
    pub ns: String,
    pub tap: String,
    pub qemu: Option<Child>,
}

impl Lab {
    pub fn new() -> Lab {
        let prefix = format!("qsw{}", std::process::id() % 100_000);
        let lab = Lab {
            ns: format!("{prefix}-up"),
            tap: format!("{prefix}t"),
            qemu: None,
        };
        let (ns, tap) = (lab.ns.as_str(), lab.tap.as_str());
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), "nameserver 198.18.0.53\n").unwrap();
        ip(&["netns", "add", ns]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["-n", ns, "tuntap", "add", "dev", tap, "mode", "tap"]);
        ip(&["-n", ns, "link", "set", tap, "address", LAB_MAC]);
        ip(&["-n", ns, "addr", "add", "10.0.0.1/24", "dev", tap]);
        ip(&["-n", ns, "link", "set", tap, "up"]);
        lab
    }

    /// Boot the guest (QEMU runs inside the namespace, where the tap is).
    pub fn boot(&mut self, image: &Path, share: &Path, console: &Path, wire: &Path) {
        let file = |name: &str| image.join(name).display().to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "qemu-system-x86_64"])
            .args(["-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"])
            .args(["-m", "1024", "-smp", "2", "-no-reboot", "-display", "none"])
            .args(["-kernel", &file("vmlinuz"), "-initrd", &file("initrd.img")])
            .args(["-append", "root=/dev/vda rw console=ttyS0 quiet"])
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", file("rootfs.ext4")))
            .arg("-snapshot")
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-netdev")
            .arg(format!(
                "tap,id=n0,ifname={},script=no,downscript=no,vnet_hdr=off",
                self.tap
            ))
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n0,mac={GUEST_MAC}"))
            // The wire as the lab's tap sees it; without vnet_hdr its records are plain
            // Ethernet (with it, QEMU puts the virtio-net header before each frame).
            .arg("-object")
            .arg(format!(
                "filter-dump,id=wire,netdev=n0,file={}",
                wire.display()
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=phoenix,security_model=none,id=phoenix",
                share.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: nothing reads a pipe while the guest runs.
            .stderr(std::fs::File::create(console.with_extension("qemu-stderr")).unwrap())
            .spawn()
            .unwrap();
        self.qemu = Some(child);
    }

    /// Wait for the guest to power off; `false` when `deadline` passed first.
    pub fn wait(&mut self, deadline: Duration) -> bool {
        let start = Instant::now();
        let child = self.qemu.as_mut().unwrap();
        while start.elapsed() < deadline {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        false
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.qemu.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        delete_netns(&self.ns);
    }
}

pub fn rounds_seen(seen: &[Seen], round: &str) -> Vec<Seen> {
    seen.iter()
        .filter(|s| s.payload.starts_with(&format!("{round} ")))
        .cloned()
        .collect()
}

/// An IPv4 UDP frame recorded on the wire.
#[derive(Debug)]
pub struct UdpFrame {
    pub vlan: Option<u16>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub dst_port: u16,
    pub payload: String,
}

/// The IPv4 UDP frames of a pcap file (QEMU's filter-dump: classic pcap, little-endian,
/// Ethernet), with their 802.1Q VLAN id when tagged.
pub fn udp_frames(pcap: &[u8]) -> Vec<UdpFrame> {
    assert!(
        pcap.len() >= 24 && pcap[..4] == [0xd4, 0xc3, 0xb2, 0xa1],
        "not a pcap file"
    );
    let u16be = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..(at + 16 + len).min(pcap.len())];
        at += 16 + len;
        if frame.len() < 14 {
            continue;
        }
        let (vlan, l3) = match u16be(frame, 12) {
            0x8100 if frame.len() >= 18 => (Some(u16be(frame, 14) & 0x0fff), 18),
            _ => (None, 14),
        };
        if frame.len() < l3 + 28 || u16be(frame, l3 - 2) != 0x0800 || frame[l3 + 9] != 17 {
            continue;
        }
        let ip = &frame[l3..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip.len() < ihl + 8 {
            continue;
        }
        let udp = &ip[ihl..];
        let addr = |o: usize| Ipv4Addr::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]);
        out.push(UdpFrame {
            vlan,
            src: addr(12),
            dst: addr(16),
            dst_port: u16be(udp, 2),
            payload: String::from_utf8_lossy(&udp[8..]).into_owned(),
        });
    }
    out
}
