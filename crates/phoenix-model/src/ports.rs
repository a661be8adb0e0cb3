//! The ports a compose file publishes: long form `{target, published}` and short form
//! `"[ip:]published:target[/proto]"` (ranges `a-b:c-d` expanded). No I/O.

use serde_json::Value;

/// The most ports one short-form range is expanded to; a longer range is not read.
const MAX_RANGE: u32 = 1024;

/// One published port of a service: the node's port and the container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Published {
    pub published: u16,
    pub target: u16,
}

/// The port the compose file publishes for `svc`'s container port `target`, if any.
pub fn published_port(compose: &Value, svc: &str, target: u16) -> Option<u16> {
    published_ports(compose, svc)
        .into_iter()
        .find(|p| p.target == target)
        .map(|p| p.published)
}

/// Every port `svc` publishes, in the order the file gives them. A port with no published
/// side (`"80"`, `{target: 80}`) publishes nothing a fixed address can reach.
pub fn published_ports(compose: &Value, svc: &str) -> Vec<Published> {
    let Some(ports) = compose
        .get("services")
        .and_then(|s| s.get(svc))
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in ports {
        match p {
            Value::Object(m) => {
                let port = |k: &str| m.get(k).and_then(as_port);
                if let (Some(target), Some(published)) = (port("target"), port("published")) {
                    out.push(Published { published, target });
                }
            }
            Value::String(s) => out.extend(short_form(s)),
            _ => {}
        }
    }
    out
}

fn as_port(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `"[ip:]published:target[/proto]"`, either side possibly a range `a-b`.
fn short_form(s: &str) -> Vec<Published> {
    let s = s.split('/').next().unwrap_or_default();
    let mut parts = s.rsplitn(3, ':');
    let (Some(target), Some(published)) = (parts.next(), parts.next()) else {
        return Vec::new();
    };
    let (Some(t), Some(p)) = (range(target), range(published)) else {
        return Vec::new();
    };
    if t.1 - t.0 != p.1 - p.0 || t.1 - t.0 >= MAX_RANGE {
        return Vec::new();
    }
    (0..=t.1 - t.0)
        .filter_map(|i| {
            Some(Published {
                published: u16::try_from(p.0 + i).ok()?,
                target: u16::try_from(t.0 + i).ok()?,
            })
        })
        .collect()
}

/// `"8080"` → (8080, 8080); `"8000-8010"` → (8000, 8010).
fn range(s: &str) -> Option<(u32, u32)> {
    let port = |x: &str| x.trim().parse::<u16>().ok().map(u32::from);
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            (a <= b).then_some((a, b))
        }
        None => port(s).map(|p| (p, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(compose: &Value) -> Vec<(u16, u16)> {
        published_ports(compose, "s")
            .into_iter()
            .map(|p| (p.published, p.target))
            .collect()
    }

    #[test]
    fn long_and_short_forms() {
        let c = json!({"services": {"s": {"ports": [
            {"target": 9443, "published": 9444, "mode": "host"},
            {"target": 80},
            "6333:6333",
            "127.0.0.1:8080:80/tcp",
            "[::1]:5353:53/udp",
            "3000",
            "7000-7002:8000-8002",
            "1-2000:1-2000",
            {"target": "81", "published": "8081"},
        ]}}});
        assert_eq!(
            pairs(&c),
            [
                (9444, 9443),
                (6333, 6333),
                (8080, 80),
                (5353, 53),
                (7000, 8000),
                (7001, 8001),
                (7002, 8002),
                (8081, 81),
            ]
        );
        assert_eq!(published_port(&c, "s", 9443), Some(9444));
        assert_eq!(published_port(&c, "s", 80), Some(8080));
        assert_eq!(published_port(&c, "s", 3000), None);
        assert_eq!(published_port(&c, "other", 80), None);
    }
}
