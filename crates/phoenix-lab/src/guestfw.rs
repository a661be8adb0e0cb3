//! Guest firewalls in the lab: each filtered guest's effective Proxmox firewall compiled into
//! one nftables table (`inet phoenix_fw`) for that guest's namespace. [`rulesets`] is pure;
//! [`load`] and [`observed_fingerprint`] do I/O (a file under the lab's state dir, `ip netns
//! exec NS nft …`, argv only).
//!
//! What is compiled — the policy the rendered `.fw` files express
//! ([`phoenix_render::firewall`]), with pve-firewall's own chain layout
//! (<https://pve.proxmox.com/wiki/Firewall>, `PVE/Firewall.pm`):
//! - a guest is filtered only when the cluster firewall and the guest firewall are on and at
//!   least one NIC is a veth with `firewall=1`; traffic on any other NIC (macvlan, `firewall=0`)
//!   is accepted untouched, as it bypasses the bridge firewall on a real host; other guests
//!   get no ruleset (`None` from [`guest_ruleset`]);
//! - the guest's IN chain runs in the namespace's `prerouting` hook before any DNAT (what
//!   arrives on the NIC, local or routed on to a container), the OUT chain in `output` and
//!   `forward` (what leaves through the NIC); loopback is accepted first, then conntrack as
//!   pve-firewall does (`ruleset_chain_add_conn_filters`): `INVALID` dropped,
//!   `RELATED,ESTABLISHED` accepted;
//! - each chain starts like `ruleset_create_vm_chain`: DHCP accepted (client → server OUT,
//!   server → client IN; pve-firewall does so unless `dhcp: 0`, which phoenix never writes),
//!   plus IPv6 neighbour discovery (`ruleset_chain_add_ndp`, `ndp` defaults on);
//! - then the rules of [`merge`] (the guest's own, then phoenix's derived ones) in order,
//!   first match wins, disabled rules left out; `proto`, `dport`/`sport` (lists and ranges),
//!   `-source`/`-dest` (CIDR, range, cluster alias, phoenix ipset resolved to addresses, one
//!   nft rule per address family) and `-i netN` (the NIC's name inside the namespace). A rule
//!   pve-firewall would refuse (unknown alias/ipset, ports without a protocol, unknown NIC) is
//!   left out with a `#` note, as pve-firewall skips rules with errors;
//! - the chain ends with the direction's policy: ACCEPT; DROP = the noise filter of
//!   `PVEFW-Drop` then drop; REJECT = the same filter (`PVEFW-Reject`) then `PVEFW-reject`.
//!
//! **REJECT (decision).** Proxmox's `REJECT` (rule action and policy) jumps to its
//! `PVEFW-reject` chain: broadcast destinations and multicast sources dropped, ICMP dropped,
//! TCP answered with a TCP reset (`--reject-with tcp-reset`), UDP with ICMP port-unreachable,
//! anything else with ICMP host-prohibited. The `pve_reject` chain does the same with nft's
//! `reject with tcp reset` / `icmpx` (admin-prohibited stands in for host-prohibited so one
//! rule covers IPv4 and IPv6). A rejected TCP connect therefore reads as *refused*, a dropped
//! one as *timed out*; both are "denied" for the reachability matrix.
//!
//! Known differences: the `nosmurfs`/`tcpflags`/`macfilter`/`ipfilter` options and log levels
//! are not modelled (phoenix writes none of them); routed OUT traffic is matched before the
//! guest's own SNAT (the host's tap sees it after); the cluster `[RULES]` apply to the host,
//! not to guests, as in Proxmox, so they play no part here.
//!
//! The table carries `comment "phoenix:<fingerprint>"`: the first 16 hex digits of the SHA-256
//! of the table body, so a caller compares [`fingerprint_of`] of the desired text with
//! [`observed_fingerprint`] of the namespace; [`ensure`] also compares the table's listing with
//! the one recorded right after it was loaded (a flush keeps the comment, not the rules), and
//! reloads when either differs. Loading is idempotent:
//! the file starts with `table inet phoenix_fw {}` + `delete table inet phoenix_fw`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use phoenix_model::model::{
    DesiredState, Direction, Endpoint, FirewallRule, Guest, NicKind, PortRange, Verdict,
};
use phoenix_render::firewall::{derived_rules, lookup_tables, merge};
use sha2::{Digest, Sha256};

use crate::LabError;
use crate::run::run;
use crate::topology::{LabTopology, guest_ns};

/// The nftables table every guest ruleset lives in.
pub const TABLE: &str = "phoenix_fw";
/// Prefix of the table comment carrying the fingerprint.
pub const FINGERPRINT_PREFIX: &str = "phoenix:";

/// One ruleset per filtered guest that has a namespace in `t`: (namespace, `nft -f` text),
/// by guest id.
pub fn rulesets(d: &DesiredState, t: &LabTopology) -> Vec<(String, String)> {
    let ctx = Context::new(d);
    d.guests
        .values()
        .filter(|g| !g.is_template)
        .filter_map(|g| {
            let ns = guest_ns(&t.prefix, g.id);
            if !t.namespaces.iter().any(|n| n.name == ns) {
                return None;
            }
            let links = t.links_in(&ns);
            let text = compile(&ctx, d, g, &|name| links.contains(&name))?;
            Some((ns, text))
        })
        .collect()
}

/// The ruleset of one guest, its NIC names checked by `has_link`; `None` when the guest is
/// not filtered.
pub fn guest_ruleset(
    d: &DesiredState,
    g: &Guest,
    has_link: &dyn Fn(&str) -> bool,
) -> Option<String> {
    compile(&Context::new(d), d, g, has_link)
}

/// The fingerprint a ruleset text declares (`comment "phoenix:…"`), or a listing shows.
pub fn fingerprint_of(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("comment \"")?
            .strip_prefix(FINGERPRINT_PREFIX)?
            .strip_suffix('"')
            .map(str::to_string)
    })
}

/// Write `text` to `<state_dir>/fw-<ns>.nft` and load it inside `ns` (`ip netns exec NS nft
/// -f FILE`). Returns the file written.
pub fn load(ns: &str, text: &str, state_dir: &Path) -> Result<PathBuf, LabError> {
    std::fs::create_dir_all(state_dir).map_err(|e| LabError::io(state_dir, e))?;
    let path = state_dir.join(format!("fw-{ns}.nft"));
    std::fs::write(&path, text).map_err(|e| LabError::io(&path, e))?;
    let file = path.to_string_lossy().into_owned();
    run("ip", &["netns", "exec", ns, "nft", "-f", &file])?;
    Ok(path)
}

/// The table loaded in `ns` as listed now, counters left out; `None` when there is none.
pub fn listing(ns: &str) -> Option<String> {
    run(
        "ip",
        &["netns", "exec", ns, "nft", "list", "table", "inet", TABLE],
    )
    .ok()
    .map(|l| crate::drift::normalise_listing(&l))
}

/// The fingerprint of the table loaded in `ns`; `None` when there is none (or no comment).
pub fn observed_fingerprint(ns: &str) -> Option<String> {
    fingerprint_of(&listing(ns)?)
}

/// Where the listing of `ns`'s table right after it was loaded is kept.
fn listing_file(state_dir: &Path, ns: &str) -> PathBuf {
    state_dir.join(format!("fw-{ns}.listing"))
}

/// Why the table of `ns` must be (re)loaded with `text`; `None` when it is the one `text`
/// declares and still lists as it did right after it was loaded. Reads only.
pub fn load_due(ns: &str, text: &str, state_dir: &Path) -> Option<&'static str> {
    let want = fingerprint_of(text);
    let now = listing(ns);
    let recorded = std::fs::read_to_string(listing_file(state_dir, ns)).ok();
    match &now {
        None => Some("no table was loaded"),
        Some(l) if want.is_none() || fingerprint_of(l) != want => Some("the policy changed"),
        Some(l) if recorded.as_deref() != Some(l.as_str()) => {
            Some("its rules differ from the ones loaded (flushed or edited)")
        }
        Some(_) => None,
    }
}

/// The guests' tables [`ensure`] would load now, for the plan's notes (`NS: why`); only
/// namespaces in `present`. Reads only, one listing per namespace, side by side.
pub fn loads_due(
    d: &DesiredState,
    t: &LabTopology,
    present: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let dir = crate::state_dir(&t.prefix);
    std::thread::scope(|scope| {
        let checks: Vec<_> = rulesets(d, t)
            .into_iter()
            .filter(|(ns, _)| present.contains(ns))
            .map(|(ns, text)| {
                let dir = &dir;
                scope.spawn(move || load_due(&ns, &text, dir).map(|why| format!("{ns}: {why}")))
            })
            .collect();
        checks
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    })
}

/// Load `text` in `ns` unless the table there is the one `text` declares (its fingerprint)
/// and still lists as it did right after it was loaded (a `nft flush table` keeps the
/// fingerprint comment but not the rules). `Some(why)` when it loaded.
pub fn ensure(ns: &str, text: &str, state_dir: &Path) -> Result<Option<String>, LabError> {
    let Some(why) = load_due(ns, text, state_dir) else {
        return Ok(None);
    };
    load(ns, text, state_dir)?;
    let loaded = listing(ns).ok_or_else(|| {
        LabError::Provision(format!(
            "the firewall table of {ns} cannot be listed after loading it"
        ))
    })?;
    let file = listing_file(state_dir, ns);
    std::fs::write(&file, loaded).map_err(|e| LabError::io(&file, e))?;
    Ok(Some(format!("the firewall table of {ns} loaded: {why}")))
}

/// Aliases and ipsets as pve-firewall resolves them (names case-insensitive).
struct Context {
    aliases: BTreeMap<String, IpAddr>,
    sets: BTreeMap<String, Vec<IpNet>>,
    derived: BTreeMap<phoenix_model::model::GuestId, Vec<FirewallRule>>,
}

impl Context {
    fn new(d: &DesiredState) -> Self {
        let (aliases, sets) = lookup_tables(d);
        Context {
            aliases,
            sets,
            derived: derived_rules(d).guests,
        }
    }

    /// Addresses of an endpoint as nft set elements; `Err` names what cannot be resolved.
    fn resolve(&self, ep: &Endpoint) -> Result<Vec<(bool, String)>, String> {
        let key = |s: &str| {
            s.trim_start_matches("dc/")
                .trim_start_matches("guest/")
                .to_ascii_lowercase()
        };
        let net = |n: &IpNet| (n.addr().is_ipv4(), Endpoint::Net(*n).to_string());
        match ep {
            Endpoint::Net(n) => Ok(vec![net(n)]),
            Endpoint::Range(a, b) if a.is_ipv4() == b.is_ipv4() => {
                Ok(vec![(a.is_ipv4(), format!("{a}-{b}"))])
            }
            Endpoint::Range(a, b) => Err(format!("range {a}-{b} mixes address families")),
            Endpoint::Alias(a) => self
                .aliases
                .get(&key(a))
                .map(|x| vec![(x.is_ipv4(), x.to_string())])
                .ok_or_else(|| format!("unknown alias {a}")),
            Endpoint::IpSet(s) => self
                .sets
                .get(&key(s))
                .map(|v| v.iter().map(net).collect())
                .ok_or_else(|| format!("unknown ipset +{s}")),
        }
    }
}

/// Compile one guest; `None` when no NIC of it is filtered.
fn compile(
    ctx: &Context,
    d: &DesiredState,
    g: &Guest,
    has_link: &dyn Fn(&str) -> bool,
) -> Option<String> {
    if !(d.firewall.enabled && g.firewall.enabled) {
        return None;
    }
    let filtered: Vec<&str> = g
        .nics
        .iter()
        .filter(|n| n.firewall && n.kind == NicKind::Veth && has_link(&n.name))
        .map(|n| n.name.as_str())
        .collect();
    if filtered.is_empty() {
        return None;
    }
    let derived = ctx.derived.get(&g.id).map_or(&[][..], Vec::as_slice);
    let rules = merge(&g.firewall.rules, derived);
    let iface = |net: &str| -> Option<String> {
        let idx: u8 = net.strip_prefix("net")?.parse().ok()?;
        g.nics
            .iter()
            .find(|n| n.index == idx)
            .map(|n| n.name.clone())
            .filter(|n| has_link(n))
    };
    let mut body = String::new();
    body.push_str(FIXED_CHAINS);
    for (dir, policy) in [
        (Direction::In, g.firewall.policy_in),
        (Direction::Out, g.firewall.policy_out),
    ] {
        rules_chain(&mut body, ctx, &rules, dir, policy, &iface);
    }
    let nics = filtered
        .iter()
        .map(|n| format!("\"{}\"", nft_string(n)))
        .collect::<Vec<_>>()
        .join(", ");
    for dir in [Direction::In, Direction::Out] {
        hook_chain(&mut body, dir, &nics);
    }
    forward_chain(&mut body, &nics);
    let digest = Sha256::digest(body.as_bytes());
    let fp: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "# phoenix: guest {id} ({name}) firewall, compiled from {path}\n\
         table inet {TABLE} {{}}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \tcomment \"{FINGERPRINT_PREFIX}{fp}\"\n\
         {body}}}\n",
        id = g.id,
        name = g.name,
        path = phoenix_render::firewall::guest_fw_path(g.id),
    ))
}

/// `PVEFW-reject` and the noise filter shared by `PVEFW-Drop` / `PVEFW-Reject`.
const FIXED_CHAINS: &str = "\tchain pve_reject {
\t\tfib daddr type broadcast drop
\t\tip saddr 224.0.0.0/4 drop
\t\tmeta l4proto icmp drop
\t\tmeta l4proto tcp reject with tcp reset
\t\tmeta l4proto udp reject with icmpx type port-unreachable
\t\treject with icmpx type admin-prohibited
\t}
\tchain pve_policy {
\t\tfib daddr type { broadcast, multicast, anycast } drop
\t\tip daddr 224.0.0.0/4 drop
\t\ticmp type destination-unreachable icmp code 4 accept
\t\ticmp type time-exceeded accept
\t\tudp dport { 135, 445 } drop
\t\tudp dport 137-139 drop
\t\tudp sport 137 udp dport 1024-65535 drop
\t\ttcp dport { 135, 139, 445 } drop
\t\tudp dport 1900 drop
\t\ttcp flags & (fin | syn | rst | ack) != syn drop
\t\tudp sport 53 drop
\t}
";

fn chain_name(dir: Direction) -> &'static str {
    match dir {
        Direction::In => "in_rules",
        Direction::Out => "out_rules",
    }
}

/// The hook chain: loopback, conntrack, unfiltered NICs, then the rules chain.
///
/// IN hooks `prerouting` at priority `mangle` (-150): after conntrack (-200), before any
/// DNAT (-100) a service inside the guest (Docker's published ports) may do, so IN sees every
/// packet arriving on the NIC with its original addresses, as the tap chain on the host does,
/// whether it ends up local or forwarded. OUT hooks `output` (the guest's own packets) and,
/// in [`forward_chain`], `forward` (packets the guest routes out of a filtered NIC);
/// `postrouting` cannot hold `reject` or `fib`.
fn hook_chain(s: &mut String, dir: Direction, nics: &str) {
    let (name, hook, iface) = match dir {
        Direction::In => ("prerouting_in", "prerouting priority mangle", "iif"),
        Direction::Out => ("output", "output priority filter", "oif"),
    };
    let _ = write!(
        s,
        "\tchain {name} {{\n\
         \t\ttype filter hook {hook}; policy accept;\n\
         \t\t{iface} \"lo\" accept\n\
         \t\tct state invalid drop\n\
         \t\tct state established,related accept\n\
         \t\t{iface}name != {{ {nics} }} accept\n\
         \t\tjump {}\n\
         \t}}\n",
        chain_name(dir)
    );
}

/// Routed traffic leaving a filtered NIC (a container's egress) takes the OUT rules too.
fn forward_chain(s: &mut String, nics: &str) {
    let _ = write!(
        s,
        "\tchain forward_out {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tct state invalid drop\n\
         \t\tct state established,related accept\n\
         \t\toifname {{ {nics} }} jump out_rules\n\
         \t}}\n"
    );
}

/// The rules chain of one direction: DHCP and NDP, the rules, the policy.
fn rules_chain(
    s: &mut String,
    ctx: &Context,
    rules: &[FirewallRule],
    dir: Direction,
    policy: Verdict,
    iface: &dyn Fn(&str) -> Option<String>,
) {
    let _ = writeln!(s, "\tchain {} {{", chain_name(dir));
    let dhcp = match dir {
        Direction::In => {
            "meta nfproto ipv4 udp sport 67 udp dport 68 accept\n\t\tmeta nfproto ipv6 udp sport 547 udp dport 546 accept"
        }
        Direction::Out => {
            "meta nfproto ipv4 udp sport 68 udp dport 67 accept\n\t\tmeta nfproto ipv6 udp sport 546 udp dport 547 accept"
        }
    };
    let _ = writeln!(s, "\t\t{dhcp}");
    let _ = writeln!(
        s,
        "\t\ticmpv6 type {{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert }} accept"
    );
    for r in rules.iter().filter(|r| r.direction == dir) {
        for line in rule_lines(ctx, r, iface) {
            let _ = writeln!(s, "\t\t{line}");
        }
    }
    let end = match policy {
        Verdict::Accept => "accept".to_string(),
        Verdict::Drop => "jump pve_policy\n\t\tdrop".to_string(),
        Verdict::Reject => "jump pve_policy\n\t\tgoto pve_reject".to_string(),
    };
    let _ = writeln!(s, "\t\t# policy_{}: {policy}", dir_word(dir));
    let _ = writeln!(s, "\t\t{end}\n\t}}");
}

fn dir_word(dir: Direction) -> &'static str {
    match dir {
        Direction::In => "in",
        Direction::Out => "out",
    }
}

/// One `.fw` rule as nft rules (one per address family when addresses are involved), or a
/// `#` note when pve-firewall would skip it.
fn rule_lines(
    ctx: &Context,
    r: &FirewallRule,
    iface: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let comment = r.comment.clone().unwrap_or_default();
    let skip = |why: String| vec![format!("# skipped ({why}): {}", nft_string(&comment))];
    if !r.enabled {
        return vec![format!("# disabled: {}", nft_string(&comment))];
    }
    let mut head = String::new();
    if let Some(net) = &r.iface {
        let Some(name) = iface(net) else {
            return skip(format!("no NIC {net}"));
        };
        let kw = match r.direction {
            Direction::In => "iifname",
            Direction::Out => "oifname",
        };
        let _ = write!(head, "{kw} \"{}\" ", nft_string(&name));
    }
    let resolve = |ep: &Option<Endpoint>| ep.as_ref().map(|e| ctx.resolve(e)).transpose();
    let (src, dst) = match (resolve(&r.source), resolve(&r.dest)) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => return skip(e),
    };
    let mut tail = String::new();
    if let Some(p) = &r.proto {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return skip(format!("protocol {p:?}"));
        }
        let _ = write!(tail, "meta l4proto {p} ");
    }
    for (kw, ports) in [("dport", &r.dport), ("sport", &r.sport)] {
        if ports.is_empty() {
            continue;
        }
        if r.proto.is_none() {
            return skip(format!("{kw} without a protocol"));
        }
        let _ = write!(tail, "th {kw} {} ", port_set(ports));
    }
    let verdict = match r.action {
        Verdict::Accept => "accept",
        Verdict::Drop => "drop",
        Verdict::Reject => "goto pve_reject",
    };
    let _ = write!(tail, "{verdict} comment \"{}\"", short_comment(&comment));
    if src.is_none() && dst.is_none() {
        return vec![format!("{head}{tail}")];
    }
    let mut out = Vec::new();
    for (v4, fam) in [(true, "ip"), (false, "ip6")] {
        let pick = |x: &Option<Vec<(bool, String)>>| -> Option<Option<String>> {
            match x {
                None => Some(None),
                Some(v) => {
                    let e: Vec<&str> = v
                        .iter()
                        .filter(|(f, _)| *f == v4)
                        .map(|(_, a)| a.as_str())
                        .collect();
                    (!e.is_empty()).then(|| Some(elements(&e)))
                }
            }
        };
        let (Some(s), Some(d)) = (pick(&src), pick(&dst)) else {
            continue;
        };
        let mut m = head.clone();
        if let Some(s) = s {
            let _ = write!(m, "{fam} saddr {s} ");
        }
        if let Some(d) = d {
            let _ = write!(m, "{fam} daddr {d} ");
        }
        out.push(format!("{m}{tail}"));
    }
    if out.is_empty() {
        return skip("source and destination in different address families".into());
    }
    out
}

/// `80` or `{ 80, 443, 8000-8010 }`.
fn port_set(ports: &[PortRange]) -> String {
    let e: Vec<String> = ports
        .iter()
        .map(|p| {
            if p.from == p.to {
                p.from.to_string()
            } else {
                format!("{}-{}", p.from, p.to)
            }
        })
        .collect();
    let refs: Vec<&str> = e.iter().map(String::as_str).collect();
    elements(&refs)
}

fn elements(e: &[&str]) -> String {
    if e.len() == 1 {
        e[0].to_string()
    } else {
        format!("{{ {} }}", e.join(", "))
    }
}

/// Text safe inside an nft double-quoted string (no quotes, no control characters).
fn nft_string(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// nft keeps at most 128 bytes of a rule comment.
fn short_comment(s: &str) -> String {
    let mut c = nft_string(s);
    if c.len() > 120 {
        let mut end = 117;
        while !c.is_char_boundary(end) {
            end -= 1;
        }
        c.truncate(end);
        c.push_str("...");
    }
    c
}

#[cfg(test)]
#[path = "guestfw_tests.rs"]
mod tests;
