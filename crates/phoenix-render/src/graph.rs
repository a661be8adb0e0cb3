//! `phoenix graph`: the platform as a picture, from the model — the host's bridges, every guest
//! with its NICs and addresses, the ingress route hop by hop, the dependencies and the Swarm —
//! as Graphviz DOT, Mermaid, or a self-contained SVG laid out here (guests in a row, bridges
//! as bars under them, the route as arcs over them). Pure: values in, text out.

use std::fmt::Write;

use phoenix_model::model::{
    Addressing, BridgeRole, DesiredState, Guest, GuestId, GuestKind, SwarmRole,
};

/// A bridge of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphBridge {
    pub name: String,
    /// `172.16.100.0/24, mesh, NAT out of vmbr0`.
    pub label: String,
}

/// A guest box: its title and the lines under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphGuest {
    pub id: GuestId,
    pub title: String,
    pub lines: Vec<String>,
    pub template: bool,
}

/// A NIC: guest → bridge, with its address (and VLAN tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNic {
    pub guest: GuestId,
    pub bridge: String,
    pub label: String,
}

/// A directed edge between guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphEdge {
    pub from: GuestId,
    pub to: GuestId,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Graph {
    pub bridges: Vec<GraphBridge>,
    pub guests: Vec<GraphGuest>,
    pub nics: Vec<GraphNic>,
    /// The ingress route: gateway → internal proxy → each routed service.
    pub route: Vec<GraphEdge>,
    /// `needs`: the guest depends on the other (explicit, or its clone source).
    pub needs: Vec<GraphEdge>,
    /// The Swarm's members, and its overlays (`traefik-public`).
    pub swarm: Vec<GuestId>,
    pub overlays: Vec<String>,
}

fn bridge_label(d: &DesiredState, b: &phoenix_model::model::Bridge) -> String {
    let mut parts = Vec::new();
    if let Some(s) = b.subnet.or(b.address) {
        parts.push(s.to_string());
    }
    parts.push(
        match b.role {
            BridgeRole::Management => "management",
            BridgeRole::PublicVlan => "public VLAN",
            BridgeRole::Mesh => "mesh",
        }
        .to_string(),
    );
    if let Some((parent, tag)) = &b.vlan {
        parts.push(format!("VLAN {tag} on {parent}"));
    }
    if b.vlan_aware {
        parts.push("VLAN-aware".into());
    }
    if let Some(n) = &b.nat {
        parts.push(format!("NAT out of {}", n.uplink));
    }
    if b.role == BridgeRole::Mesh && d.mesh().is_some() {
        parts.push("DNS".into());
    }
    parts.join(", ")
}

fn roles(d: &DesiredState, g: &Guest) -> Vec<&'static str> {
    let r = &d.roles;
    let mut out = Vec::new();
    if r.gateway == Some(g.id) {
        out.push("gateway");
    }
    if r.internal_proxy == Some(g.id) {
        out.push("internal proxy");
    }
    if r.ca == Some(g.id) {
        out.push("CA");
    }
    match g.swarm.as_ref().map(|s| s.role) {
        Some(SwarmRole::Manager) => out.push("swarm manager"),
        Some(SwarmRole::Worker) => out.push("swarm worker"),
        None => {}
    }
    out
}

fn nic_label(n: &phoenix_model::model::Nic) -> String {
    let addr = match &n.addressing {
        Addressing::Static { cidr, .. } => cidr.to_string(),
        Addressing::Dhcp => "dhcp".into(),
        Addressing::Manual => "manual".into(),
    };
    match n.tag {
        Some(t) => format!("{} {addr} (VLAN {t})", n.name),
        None => format!("{} {addr}", n.name),
    }
}

/// The graph of `d`; `overlays` are the Swarm's overlay networks (the planner names them).
pub fn graph(d: &DesiredState, overlays: &[&str]) -> Graph {
    let mut g = Graph {
        bridges: d
            .bridges
            .iter()
            .map(|b| GraphBridge {
                name: b.name.clone(),
                label: bridge_label(d, b),
            })
            .collect(),
        overlays: overlays.iter().map(|s| s.to_string()).collect(),
        ..Graph::default()
    };
    for guest in d.guests.values() {
        let kind = match guest.kind {
            GuestKind::Lxc => "lxc",
            GuestKind::Vm => "vm",
        };
        let mut lines: Vec<String> = guest.nics.iter().map(nic_label).collect();
        let r = roles(d, guest);
        if !r.is_empty() {
            lines.push(r.join(", "));
        }
        if let Some(s) = &guest.traefik_service {
            lines.push(format!("{}.{} → {}:{}", s.name, d.domain, s.scheme, s.port));
        }
        if guest.is_template {
            lines.push("template".into());
        }
        g.guests.push(GraphGuest {
            id: guest.id,
            title: format!("{kind} {} {}", guest.id, guest.name),
            lines,
            template: guest.is_template,
        });
        for n in &guest.nics {
            g.nics.push(GraphNic {
                guest: guest.id,
                bridge: n.bridge.clone(),
                label: nic_label(n),
            });
        }
        let mut needs: Vec<GuestId> = guest.dependencies.clone();
        if let phoenix_model::model::GuestSource::Clone { from, .. } = &guest.source
            && !needs.contains(from)
        {
            needs.push(*from);
        }
        for to in needs {
            let label = match &guest.source {
                phoenix_model::model::GuestSource::Clone { from, snapshot } if *from == to => {
                    match snapshot {
                        Some(s) => format!("clone of @{s}"),
                        None => "clone of".into(),
                    }
                }
                _ => "needs".into(),
            };
            g.needs.push(GraphEdge {
                from: guest.id,
                to,
                label,
            });
        }
        if guest.swarm.is_some() {
            g.swarm.push(guest.id);
        }
    }
    if let (Some(gw), Some(proxy)) = (d.roles.gateway, d.roles.internal_proxy) {
        g.route.push(GraphEdge {
            from: gw,
            to: proxy,
            label: "1 https :443".into(),
        });
        for guest in d.guests.values() {
            if let Some(s) = &guest.traefik_service {
                g.route.push(GraphEdge {
                    from: proxy,
                    to: guest.id,
                    label: format!("2 {} :{}", s.scheme, s.port),
                });
            }
        }
    }
    g
}

/// A DOT string: backslashes and quotes escaped, line breaks as `\n`.
fn dot_quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// Graphviz DOT (`dot -Tsvg`).
pub fn dot(g: &Graph) -> String {
    let mut s = String::from(
        "digraph phoenix {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for b in &g.bridges {
        let _ = writeln!(
            s,
            "  {} [shape=box, style=filled, fillcolor=\"#e8eef7\", label={}];",
            dot_quote(&b.name),
            dot_quote(&format!("{}\n{}", b.name, b.label))
        );
    }
    for guest in &g.guests {
        let mut label = guest.title.clone();
        for l in &guest.lines {
            label.push('\n');
            label.push_str(l);
        }
        let style = if guest.template { "dashed" } else { "solid" };
        let _ = writeln!(
            s,
            "  g{} [shape=box, style={style}, label={}];",
            guest.id,
            dot_quote(&label)
        );
    }
    for n in &g.nics {
        let _ = writeln!(
            s,
            "  g{} -> {} [dir=none, label={}];",
            n.guest,
            dot_quote(&n.bridge),
            dot_quote(&n.label)
        );
    }
    for e in &g.route {
        let _ = writeln!(
            s,
            "  g{} -> g{} [color=\"#c0392b\", penwidth=2, label={}];",
            e.from,
            e.to,
            dot_quote(&e.label)
        );
    }
    for e in &g.needs {
        let _ = writeln!(
            s,
            "  g{} -> g{} [style=dashed, color=gray40, label={}];",
            e.from,
            e.to,
            dot_quote(&e.label)
        );
    }
    if !g.swarm.is_empty() {
        s.push_str("  subgraph cluster_swarm {\n    label=");
        s.push_str(&dot_quote(&swarm_title(g)));
        s.push_str(";\n    style=dashed;\n");
        for id in &g.swarm {
            let _ = writeln!(s, "    g{id};");
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

fn swarm_title(g: &Graph) -> String {
    if g.overlays.is_empty() {
        "Docker Swarm".into()
    } else {
        format!("Docker Swarm (overlay {})", g.overlays.join(", "))
    }
}

fn mermaid_text(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "#quot;"))
}

/// Mermaid (`flowchart`), for a Markdown page.
pub fn mermaid(g: &Graph) -> String {
    let mut s = String::from("flowchart TB\n");
    for b in &g.bridges {
        let id = b.name.replace('.', "_");
        let _ = writeln!(
            s,
            "  {id}[{}]",
            mermaid_text(&format!("{}<br/>{}", b.name, b.label))
        );
    }
    let in_swarm = |id: GuestId| g.swarm.contains(&id);
    let guest_line = |guest: &GraphGuest| {
        let mut label = guest.title.clone();
        for l in &guest.lines {
            label.push_str("<br/>");
            label.push_str(l);
        }
        format!("g{}[{}]", guest.id, mermaid_text(&label))
    };
    for guest in g.guests.iter().filter(|x| !in_swarm(x.id)) {
        let _ = writeln!(s, "  {}", guest_line(guest));
    }
    if !g.swarm.is_empty() {
        let _ = writeln!(s, "  subgraph swarm[{}]", mermaid_text(&swarm_title(g)));
        for guest in g.guests.iter().filter(|x| in_swarm(x.id)) {
            let _ = writeln!(s, "    {}", guest_line(guest));
        }
        s.push_str("  end\n");
    }
    for n in &g.nics {
        let _ = writeln!(
            s,
            "  g{} ---|{}| {}",
            n.guest,
            mermaid_text(&n.label),
            n.bridge.replace('.', "_")
        );
    }
    for e in &g.route {
        let _ = writeln!(s, "  g{} ==>|{}| g{}", e.from, mermaid_text(&e.label), e.to);
    }
    for e in &g.needs {
        let _ = writeln!(
            s,
            "  g{} -.->|{}| g{}",
            e.from,
            mermaid_text(&e.label),
            e.to
        );
    }
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const GAP: i64 = 30;
const LINE: i64 = 15;
const MARGIN: i64 = 20;

/// The lines in a guest's box: its own, then what it needs.
fn box_lines(g: &Graph, guest: &GraphGuest) -> Vec<String> {
    let mut lines = guest.lines.clone();
    let needs: Vec<String> = g
        .needs
        .iter()
        .filter(|e| e.from == guest.id)
        .map(|e| format!("{} {}", e.label, e.to))
        .collect();
    if !needs.is_empty() {
        lines.push(needs.join(", "));
    }
    lines
}

/// A self-contained SVG: guests in a row, the route as red arcs over them, their NICs down to
/// the bridges' bars, dependencies as a line in each box, the Swarm's members framed.
pub fn svg(g: &Graph) -> String {
    // Wide enough for the longest line (about 6.3 px a character at 11 px).
    let longest = g
        .guests
        .iter()
        .flat_map(|x| std::iter::once(x.title.clone()).chain(box_lines(g, x)))
        .map(|l| l.chars().count() as i64)
        .max()
        .unwrap_or(20);
    let box_w = (longest * 63 / 10 + 20).max(200);
    let n = g.guests.len().max(1) as i64;
    let width = MARGIN * 2 + n * box_w + (n - 1) * GAP;
    let arc_room = if g.route.is_empty() {
        20
    } else {
        50 + 24 * g.route.len().min(4) as i64
    };
    let top = MARGIN + arc_room + 20;
    let box_h = |guest: &GraphGuest| 24 + LINE * box_lines(g, guest).len() as i64 + 8;
    let tallest = g.guests.iter().map(box_h).max().unwrap_or(40);
    let bars_top = top + tallest + 60;
    let height = bars_top + 50 * g.bridges.len() as i64 + 40;
    let x_of = |id: GuestId| {
        g.guests
            .iter()
            .position(|x| x.id == id)
            .map(|i| MARGIN + i as i64 * (box_w + GAP))
    };
    let bar_y = |name: &str| {
        g.bridges
            .iter()
            .position(|b| b.name == name)
            .map(|i| bars_top + 50 * i as i64)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11">"##
    );
    s.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>
<rect width="100%" height="100%" fill="white"/>
"##,
    );
    // The Swarm's frame first, under the boxes.
    let xs: Vec<i64> = g.swarm.iter().filter_map(|id| x_of(*id)).collect();
    if let (Some(min), Some(max)) = (xs.iter().min(), xs.iter().max()) {
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="{}" height="{}" rx="10" fill="#f4f9f4" stroke="#3c8d40" stroke-dasharray="6 4"/>"##,
            min - 10,
            top - 10,
            max - min + box_w + 20,
            tallest + 24
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" fill="#3c8d40">{}</text>"##,
            min - 4,
            top + tallest + 8,
            xml(&swarm_title(g))
        );
    }
    // Bridges.
    for (i, b) in g.bridges.iter().enumerate() {
        let y = bars_top + 50 * i as i64;
        let _ = writeln!(
            s,
            r##"<line x1="{MARGIN}" y1="{y}" x2="{}" y2="{y}" stroke="#2c5d9e" stroke-width="4"/>"##,
            width - MARGIN
        );
        let _ = writeln!(
            s,
            r##"<text x="{MARGIN}" y="{}" font-weight="bold" fill="#2c5d9e">{} <tspan font-weight="normal">{}</tspan></text>"##,
            y + 16,
            xml(&b.name),
            xml(&b.label)
        );
    }
    // NICs: down from the box to the bar, the address by the bar.
    for guest in &g.guests {
        let Some(x) = x_of(guest.id) else { continue };
        let bottom = top + box_h(guest);
        for (k, nic) in g.nics.iter().filter(|n| n.guest == guest.id).enumerate() {
            let Some(y) = bar_y(&nic.bridge) else {
                continue;
            };
            let nx = x + 30 + 70 * k as i64;
            let _ = writeln!(
                s,
                r##"<line x1="{nx}" y1="{bottom}" x2="{nx}" y2="{y}" stroke="#555"/><circle cx="{nx}" cy="{y}" r="3" fill="#555"/>"##
            );
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" font-size="9" fill="#333">{}</text>"##,
                nx + 4,
                y - 4,
                xml(nic.label.split_once(' ').map_or(&nic.label, |(_, a)| a))
            );
        }
    }
    // Guest boxes.
    for guest in &g.guests {
        let Some(x) = x_of(guest.id) else { continue };
        let dash = if guest.template {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r##"<rect x="{x}" y="{top}" width="{box_w}" height="{}" rx="6" fill="#fffdf5" stroke="#444"{dash}/>"##,
            box_h(guest)
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" font-weight="bold">{}</text>"##,
            x + 8,
            top + 17,
            xml(&guest.title)
        );
        for (i, l) in box_lines(g, guest).iter().enumerate() {
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}">{}</text>"##,
                x + 8,
                top + 33 + LINE * i as i64,
                xml(l)
            );
        }
    }
    // The route: arcs over the boxes, numbered hop by hop.
    for (i, e) in g.route.iter().enumerate() {
        let (Some(a), Some(b)) = (x_of(e.from), x_of(e.to)) else {
            continue;
        };
        let (x1, x2) = (a + box_w / 2 + 10, b + box_w / 2 - 10);
        let lift = 20 + 24 * (i as i64 % 4);
        let mid = (x1 + x2) / 2;
        let _ = writeln!(
            s,
            r##"<path d="M{x1},{top} C{x1},{} {x2},{} {x2},{top}" fill="none" stroke="#c0392b" stroke-width="2" marker-end="url(#arrow)"/>"##,
            top - lift - 20,
            top - lift - 20
        );
        let _ = writeln!(
            s,
            r##"<text x="{mid}" y="{}" text-anchor="middle" fill="#c0392b">{}</text>"##,
            top - lift - 8,
            xml(&e.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_each_format() {
        assert_eq!(xml("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
        assert_eq!(dot_quote("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(mermaid_text("a\"b"), "\"a#quot;b\"");
    }
}
