//! In-process configuration of the lab's namespaces over rtnetlink: what `ip -n NS -batch`
//! did for every namespace but the hypervisor (links up, MACs, bridge ports, addresses,
//! routes, IPv4 forwarding), without starting a process per namespace.
//!
//! A small pool of threads takes namespaces from a queue; each thread enters a namespace with
//! `setns(CLONE_NEWNET)` (which changes only the calling thread), opens a `NETLINK_ROUTE`
//! socket there and sends one request per operation, each acknowledged (`NLM_F_ACK`) so an
//! error names the operation. Forwarding is written to `/proc/sys/net/ipv4/ip_forward` from the
//! same thread (net sysctls belong to the opener's namespace).
//!
//! Messages (rtnetlink(7)): `RTM_NEWLINK` by name (`IFLA_IFNAME`, index 0) for up, address
//! (`IFLA_ADDRESS`) and master (`IFLA_MASTER`); `RTM_NEWADDR` with `IFA_LOCAL` + `IFA_ADDRESS`;
//! `RTM_NEWROUTE` in the main table with `RTA_GATEWAY` (and `RTA_DST`). Encoding is pure and
//! unit-tested; the I/O is exercised by every lab test.

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;

use ipnet::IpNet;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};

use crate::LabError;
use crate::topology::LabTopology;

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFF_UP: u32 = 0x1;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_GATEWAY: u16 = 5;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// One operation inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set the link up, optionally with a MAC address and a bridge master first.
    Link {
        name: String,
        mac: Option<[u8; 6]>,
        master: Option<String>,
    },
    Addr {
        dev: String,
        cidr: IpNet,
    },
    /// `None`: the default route.
    Route {
        dest: Option<IpNet>,
        via: IpAddr,
    },
    Forwarding,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Link { name, mac, master } => {
                write!(f, "link set {name}")?;
                if let Some(m) = master {
                    write!(f, " master {m}")?;
                }
                if let Some(m) = mac {
                    let hex: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
                    write!(f, " address {}", hex.join(":"))?;
                }
                f.write_str(" up")
            }
            Op::Addr { dev, cidr } => write!(f, "addr add {cidr} dev {dev}"),
            Op::Route { dest: None, via } => write!(f, "route add default via {via}"),
            Op::Route { dest: Some(d), via } => write!(f, "route add {d} via {via}"),
            Op::Forwarding => f.write_str("sysctl net.ipv4.ip_forward=1"),
        }
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    parts.try_into().ok()
}

/// The operations for namespace `ns` of `t`, in order (what `batch::ns_batch` writes, minus
/// the macvlans' creation, which stays with the hypervisor).
pub fn ops(t: &LabTopology, ns: &str) -> Vec<Op> {
    let link = |name: &str| Op::Link {
        name: name.to_string(),
        mac: None,
        master: None,
    };
    let mut out = vec![link("lo")];
    for b in t.bridges.iter().filter(|b| b.ns == ns) {
        out.push(link(&b.name));
    }
    for v in &t.veths {
        if v.host_ns == ns {
            out.push(Op::Link {
                name: v.host_name.clone(),
                mac: None,
                master: v.master.clone(),
            });
        }
        if v.peer_ns == ns {
            out.push(Op::Link {
                name: v.peer_name.clone(),
                mac: v.peer_mac.as_deref().and_then(parse_mac),
                master: None,
            });
        }
    }
    for m in t.macvlans.iter().filter(|m| m.ns == ns) {
        out.push(link(&m.name));
    }
    for a in t.addresses.iter().filter(|a| a.ns == ns) {
        out.push(Op::Addr {
            dev: a.dev.clone(),
            cidr: a.cidr,
        });
    }
    for r in t.routes.iter().filter(|r| r.ns == ns) {
        out.push(Op::Route {
            dest: r.dest,
            via: r.via,
        });
    }
    if t.namespaces.iter().any(|n| n.name == ns && n.forwarding) {
        out.push(Op::Forwarding);
    }
    out
}

fn attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

fn ip_bytes(a: IpAddr) -> (u8, Vec<u8>) {
    match a {
        IpAddr::V4(v) => (AF_INET, v.octets().to_vec()),
        IpAddr::V6(v) => (AF_INET6, v.octets().to_vec()),
    }
}

/// `RTM_NEWLINK` by name: up, with a MAC and a master index when given.
pub fn link_msg(seq: u32, name: &str, mac: Option<[u8; 6]>, master: Option<u32>) -> Vec<u8> {
    let mut body = Vec::new();
    body.push(0); // family AF_UNSPEC
    body.push(0);
    body.extend_from_slice(&0u16.to_ne_bytes()); // type
    body.extend_from_slice(&0i32.to_ne_bytes()); // index: by name
    body.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
    body.extend_from_slice(&IFF_UP.to_ne_bytes()); // change
    let mut cname = name.as_bytes().to_vec();
    cname.push(0);
    attr(&mut body, IFLA_IFNAME, &cname);
    if let Some(m) = mac {
        attr(&mut body, IFLA_ADDRESS, &m);
    }
    if let Some(i) = master {
        attr(&mut body, IFLA_MASTER, &i.to_ne_bytes());
    }
    message(RTM_NEWLINK, 0, seq, &body)
}

/// `RTM_NEWADDR`: `cidr` on interface `index`.
pub fn addr_msg(seq: u32, index: u32, cidr: IpNet) -> Vec<u8> {
    let (family, addr) = ip_bytes(cidr.addr());
    let mut body = vec![family, cidr.prefix_len(), 0, 0];
    body.extend_from_slice(&index.to_ne_bytes());
    attr(&mut body, IFA_LOCAL, &addr);
    attr(&mut body, IFA_ADDRESS, &addr);
    message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, seq, &body)
}

/// `RTM_NEWROUTE` in the main table: `dest` (or default) via `via`.
pub fn route_msg(seq: u32, dest: Option<IpNet>, via: IpAddr) -> Vec<u8> {
    let (family, gw) = ip_bytes(via);
    let dst_len = dest.map_or(0, |d| d.prefix_len());
    let mut body = vec![
        family,
        dst_len,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ];
    body.extend_from_slice(&0u32.to_ne_bytes());
    if let Some(d) = dest {
        attr(&mut body, RTA_DST, &ip_bytes(d.network()).1);
    }
    attr(&mut body, RTA_GATEWAY, &gw);
    message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, seq, &body)
}

/// Every `NLMSG_ERROR` acknowledgement in `buf`: sequence number and error code (0: success).
pub fn acks(buf: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    let mut off = 0;
    let field = |from: usize| -> Option<[u8; 4]> { buf.get(from..from + 4)?.try_into().ok() };
    while let (Some(len), Some(kind), Some(seq)) = (field(off), field(off + 4), field(off + 8)) {
        let len = u32::from_ne_bytes(len) as usize;
        let kind = u16::from_ne_bytes([kind[0], kind[1]]);
        if len < 16 || off + len > buf.len() {
            break;
        }
        if kind == NLMSG_ERROR
            && len >= 20
            && let Some(code) = field(off + 16)
        {
            out.push((u32::from_ne_bytes(seq), i32::from_ne_bytes(code)));
        }
        off += (len + 3) & !3;
    }
    out
}

/// The error code of an `NLMSG_ERROR` acknowledgement for `seq` (0: success), if `buf` holds one.
pub fn ack(buf: &[u8], seq: u32) -> Option<i32> {
    acks(buf)
        .into_iter()
        .find(|(s, _)| *s == seq)
        .map(|(_, e)| e)
}

struct Sock {
    fd: OwnedFd,
    seq: u32,
}

impl Sock {
    fn open() -> Result<Sock, String> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| format!("netlink socket: {e}"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| format!("netlink bind: {e}"))?;
        Ok(Sock { fd, seq: 0 })
    }

    /// Send every message of `batch` in one `send` (the kernel handles them in order) and
    /// wait for the acknowledgement of each sequence number in `seqs`; the first error (in
    /// `seqs` order) is returned with its sequence number.
    fn request_all(&mut self, batch: &[u8], seqs: &[u32]) -> Result<(), (Option<u32>, String)> {
        if seqs.is_empty() {
            return Ok(());
        }
        send(self.fd.as_raw_fd(), batch, MsgFlags::empty())
            .map_err(|e| (None, format!("send: {e}")))?;
        let mut codes: std::collections::HashMap<u32, i32> = std::collections::HashMap::new();
        let mut buf = vec![0u8; 65536];
        while seqs.iter().any(|s| !codes.contains_key(s)) {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                .map_err(|e| (None, format!("recv: {e}")))?;
            codes.extend(acks(&buf[..n]));
        }
        for s in seqs {
            if let Some(&e) = codes.get(s)
                && e != 0
            {
                return Err((Some(*s), nix::errno::Errno::from_raw(-e).desc().to_string()));
            }
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }
}

fn index(name: &str) -> Result<u32, String> {
    nix::net::if_::if_nametoindex(name).map_err(|e| format!("no link {name}: {e}"))
}

/// Apply `ops` in the namespace the calling thread is in: every netlink message in one
/// batch, acknowledged one by one (an error names its operation).
fn apply_here(ops: &[Op]) -> Result<(), (Op, String)> {
    let mut sock = Sock::open().map_err(|e| (Op::Forwarding, e))?;
    let mut batch = Vec::new();
    let mut sent: Vec<(u32, &Op)> = Vec::new();
    for op in ops {
        let seq = sock.next_seq();
        let msg = match op {
            Op::Link { name, mac, master } => master
                .as_deref()
                .map(index)
                .transpose()
                .map(|m| link_msg(seq, name, *mac, m)),
            Op::Addr { dev, cidr } => index(dev).map(|i| addr_msg(seq, i, *cidr)),
            Op::Route { dest, via } => Ok(route_msg(seq, *dest, *via)),
            Op::Forwarding => {
                File::options()
                    .write(true)
                    .open("/proc/sys/net/ipv4/ip_forward")
                    .and_then(|mut f| f.write_all(b"1\n"))
                    .map_err(|e| (op.clone(), e.to_string()))?;
                continue;
            }
        };
        batch.extend(msg.map_err(|e| (op.clone(), e))?);
        sent.push((seq, op));
    }
    let seqs: Vec<u32> = sent.iter().map(|(s, _)| *s).collect();
    sock.request_all(&batch, &seqs).map_err(|(seq, e)| {
        let op = seq
            .and_then(|s| sent.iter().find(|(q, _)| *q == s))
            .map_or(Op::Forwarding, |(_, op)| (*op).clone());
        (op, e)
    })
}

/// Configure every namespace in `nss` (each with its [`ops`]) from a pool of `threads`
/// threads, in the order given; the first failure, naming the namespace and the operation,
/// is returned. `hv_batched`: the hypervisor's links were configured by its `ip -batch`
/// (the one that creates the macvlans), so only its forwarding is left here.
pub fn configure(
    t: &LabTopology,
    nss: &[String],
    hv_batched: bool,
    threads: usize,
) -> Result<(), LabError> {
    let queue: Mutex<Vec<&String>> = Mutex::new(nss.iter().rev().collect());
    let first_err: Mutex<Option<LabError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(nss.len().max(1)) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some(ns) = next else { break };
                    if let Err(e) = configure_one(t, ns, hv_batched)
                        && let Ok(mut slot) = first_err.lock()
                    {
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_err.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

fn configure_one(t: &LabTopology, ns: &str, hv_batched: bool) -> Result<(), LabError> {
    let ops = if ns == t.hv && hv_batched {
        // The hypervisor's links came from its `ip -batch` (macvlans into the guests).
        ops(t, ns)
            .into_iter()
            .filter(|o| *o == Op::Forwarding)
            .collect()
    } else {
        ops(t, ns)
    };
    let path = Path::new("/run/netns").join(ns);
    let handle = File::open(&path).map_err(|e| LabError::io(&path, e))?;
    nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        LabError::Service {
            name: format!("netlink {ns}"),
            reason: format!("setns: {e}"),
        }
    })?;
    apply_here(&ops).map_err(|(op, e)| LabError::Service {
        name: format!("netlink {ns}"),
        reason: format!("`{op}`: {e}"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;

    #[test]
    fn link_message_layout() {
        let m = link_msg(7, "eth0", Some([2, 0, 0, 1, 1, 0]), Some(5));
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), RTM_NEWLINK);
        assert_eq!(
            u16::from_ne_bytes(m[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        // ifinfomsg: flags and change are IFF_UP.
        assert_eq!(u32::from_ne_bytes(m[24..28].try_into().unwrap()), IFF_UP);
        assert_eq!(u32::from_ne_bytes(m[28..32].try_into().unwrap()), IFF_UP);
        // IFLA_IFNAME "eth0\0" padded to 12 bytes, then IFLA_ADDRESS (10 → 12), IFLA_MASTER (8).
        assert_eq!(&m[32..34], &9u16.to_ne_bytes());
        assert_eq!(&m[36..41], b"eth0\0");
        assert_eq!(&m[44..46], &10u16.to_ne_bytes());
        assert_eq!(&m[48..54], &[2, 0, 0, 1, 1, 0]);
        assert_eq!(&m[58..60], &IFLA_MASTER.to_ne_bytes());
        assert!(m.len().is_multiple_of(4));
    }

    #[test]
    fn addr_and_route_messages() {
        let cidr: IpNet = "172.16.100.10/24".parse().unwrap();
        let m = addr_msg(1, 3, cidr);
        assert_eq!(&m[16..20], &[AF_INET, 24, 0, 0]);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 3);
        assert_eq!(&m[28..32], &[172, 16, 100, 10]);
        let r = route_msg(2, None, "172.16.100.1".parse().unwrap());
        assert_eq!(&r[16..24], &[AF_INET, 0, 0, 0, 254, 3, 0, 1]);
        assert_eq!(&r[30..32], &RTA_GATEWAY.to_ne_bytes());
        assert_eq!(&r[32..36], &[172, 16, 100, 1]);
        let r = route_msg(
            3,
            Some("10.1.0.0/16".parse().unwrap()),
            "10.0.0.1".parse().unwrap(),
        );
        assert_eq!(r[17], 16);
        assert_eq!(&r[30..32], &RTA_DST.to_ne_bytes());
        assert_eq!(&r[32..36], &[10, 1, 0, 0]);
    }

    #[test]
    fn acks_are_found_by_sequence() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&36u32.to_ne_bytes());
        buf.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&9u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&(-17i32).to_ne_bytes());
        buf.extend_from_slice(&[0u8; 16]);
        assert_eq!(ack(&buf, 9), Some(-17));
        assert_eq!(ack(&buf, 8), None);
        // A batch's acknowledgements arrive together: each is read with its sequence number.
        let mut two = buf.clone();
        two.extend_from_slice(&buf);
        two[36 + 8..36 + 12].copy_from_slice(&10u32.to_ne_bytes());
        two[36 + 16..36 + 20].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(acks(&two), vec![(9, -17), (10, 0)]);
        assert_eq!(acks(&two[..40]), vec![(9, -17)]);
        assert_eq!(parse_mac("02:00:00:01:01:00"), Some([2, 0, 0, 1, 1, 0]));
        assert_eq!(parse_mac("zz"), None);
    }
}
