//! A minimal DNS message codec (RFC 1035): build one recursive A query, parse a response's
//! header, rcode and answer records (A addresses and CNAME targets; other types are named
//! only). Hand-rolled on purpose: the probe needs ~150 lines of wire format, not the
//! hickory-proto dependency tree; truncated (TC) answers are reported, not retried over TCP.
//! No I/O.

use std::fmt;
use std::net::Ipv4Addr;

use crate::error::ProbeError;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;

/// Response code (RFC 1035 §4.1.1, RFC 6895).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rcode(pub u8);

impl Rcode {
    pub const NOERROR: Rcode = Rcode(0);
    pub const SERVFAIL: Rcode = Rcode(2);
    pub const NXDOMAIN: Rcode = Rcode(3);
    pub const REFUSED: Rcode = Rcode(5);
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("NOERROR"),
            1 => f.write_str("FORMERR"),
            2 => f.write_str("SERVFAIL"),
            3 => f.write_str("NXDOMAIN"),
            4 => f.write_str("NOTIMP"),
            5 => f.write_str("REFUSED"),
            n => write!(f, "RCODE{n}"),
        }
    }
}

/// One answer record, as far as the probe cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    A(Ipv4Addr),
    Cname(String),
    Other(u16),
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::A(a) => write!(f, "A {a}"),
            Record::Cname(n) => write!(f, "CNAME {n}"),
            Record::Other(t) => write!(f, "TYPE{t}"),
        }
    }
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub id: u16,
    pub rcode: Rcode,
    pub authoritative: bool,
    pub truncated: bool,
    pub answers: Vec<Record>,
}

/// Build a recursive A query for `name`.
pub fn a_query(id: u16, name: &str) -> Result<Vec<u8>, ProbeError> {
    let bad = |why| ProbeError::DnsName {
        name: name.to_string(),
        why,
    };
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00]); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(bad("empty or longer than 253 octets"));
    }
    for label in trimmed.split('.') {
        let len = u8::try_from(label.len()).map_err(|_| bad("label longer than 63 octets"))?;
        if len == 0 || len > 63 {
            return Err(bad("empty label or longer than 63 octets"));
        }
        m.push(len);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&TYPE_A.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// Why a datagram is not a usable response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DNS message: {0}")]
pub struct Malformed(pub &'static str);

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, Malformed> {
        let b = *self.buf.get(self.pos).ok_or(Malformed("short message"))?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    fn skip(&mut self, n: usize) -> Result<(), Malformed> {
        if self.pos + n > self.buf.len() {
            return Err(Malformed("short message"));
        }
        self.pos += n;
        Ok(())
    }

    /// Read a (possibly compressed) name starting at the cursor.
    fn name(&mut self) -> Result<String, Malformed> {
        let (name, end) = read_name(self.buf, self.pos)?;
        self.pos = end;
        Ok(name)
    }
}

/// Read a name at `pos`; returns it and the position after it in the original stream.
fn read_name(buf: &[u8], mut pos: usize) -> Result<(String, usize), Malformed> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *buf.get(pos).ok_or(Malformed("name runs past the end"))?;
        match len {
            0 => {
                let after = end.unwrap_or(pos + 1);
                return Ok((labels.join("."), after));
            }
            l if l & 0xC0 == 0xC0 => {
                let lo = *buf.get(pos + 1).ok_or(Malformed("short pointer"))?;
                end.get_or_insert(pos + 2);
                pos = usize::from(l & 0x3F) << 8 | usize::from(lo);
            }
            l if l < 64 => {
                let s = buf
                    .get(pos + 1..pos + 1 + usize::from(l))
                    .ok_or(Malformed("label runs past the end"))?;
                labels.push(String::from_utf8_lossy(s).into_owned());
                pos += 1 + usize::from(l);
            }
            _ => return Err(Malformed("bad label length")),
        }
    }
    Err(Malformed("compression loop"))
}

/// Parse a response: header, skip questions, read answers.
pub fn parse_response(buf: &[u8]) -> Result<Response, Malformed> {
    let mut r = Reader { buf, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err(Malformed("not a response (QR=0)"));
    }
    let qd = r.u16()?;
    let an = r.u16()?;
    r.skip(4)?;
    for _ in 0..qd {
        r.name()?;
        r.skip(4)?;
    }
    let mut answers = Vec::new();
    for _ in 0..an {
        r.name()?;
        let rtype = r.u16()?;
        let _class = r.u16()?;
        r.skip(4)?; // TTL
        let len = usize::from(r.u16()?);
        let start = r.pos;
        let data = buf
            .get(start..start + len)
            .ok_or(Malformed("record data runs past the end"))?;
        answers.push(match (rtype, data) {
            (TYPE_A, [a, b, c, d]) => Record::A(Ipv4Addr::new(*a, *b, *c, *d)),
            (TYPE_CNAME, _) => Record::Cname(read_name(buf, start)?.0),
            (t, _) => Record::Other(t),
        });
        r.skip(len)?;
    }
    Ok(Response {
        id,
        // Low 4 bits of the flags; extended rcodes (EDNS) are not requested.
        rcode: Rcode((flags & 0x000F) as u8),
        authoritative: flags & 0x0400 != 0,
        truncated: flags & 0x0200 != 0,
        answers,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn query_layout_and_answer_parse() {
        let q = a_query(0x1234, "a.lab.test").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x01a\x03lab\x04test\x00\x00\x01\x00\x01");
        // Response: echo the question, one A answer with a compressed name pointing at 12.
        let mut resp = q.clone();
        resp[2] = 0x85; // QR, AA, RD
        resp[3] = 0x80;
        resp[7] = 1;
        resp.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 7]);
        let r = parse_response(&resp).unwrap();
        assert_eq!(r.id, 0x1234);
        assert_eq!(r.rcode, Rcode::NOERROR);
        assert!(r.authoritative);
        assert_eq!(r.answers, vec![Record::A(Ipv4Addr::new(10, 0, 0, 7))]);
    }

    #[test]
    fn rejects_bad_names_and_loops() {
        assert!(a_query(1, "").is_err());
        assert!(a_query(1, "a..b").is_err());
        assert!(a_query(1, &"x".repeat(64)).is_err());
        let mut m = vec![0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert!(parse_response(&m).is_err());
    }
}
