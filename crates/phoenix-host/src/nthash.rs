//! The NT hash of a password (MD4 over UTF-16LE), the form `pdbedit -Lw` shows of a Samba
//! password: phoenix compares hashes and never reads a password back. Pure.

use md4::{Digest, Md4};

/// An NT hash; `Debug` prints nothing of it (it is as good as the password to an attacker).
#[derive(Clone, PartialEq, Eq)]
pub struct NtHash([u8; 16]);

impl std::fmt::Debug for NtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NtHash(<redacted>)")
    }
}

impl NtHash {
    /// The hash of `password` (UTF-8; invalid bytes replaced, as Samba's own conversion would
    /// refuse them anyway).
    pub fn of(password: &[u8]) -> NtHash {
        let text = String::from_utf8_lossy(password);
        let mut md4 = Md4::new();
        for unit in text.encode_utf16() {
            md4.update(unit.to_le_bytes());
        }
        NtHash(md4.finalize().into())
    }

    /// The 32 hex digits `pdbedit -Lw` prints (`X…` for no password gives `None`).
    pub fn from_hex(hex: &str) -> Option<NtHash> {
        if hex.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(NtHash(out))
    }

    /// Upper-case hex, as `pdbedit -Lw` prints it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02X}")).collect()
    }

    /// The NT hash of `user` in `pdbedit -L -w` output
    /// (`user:uid:LM:NT:[flags]:LCT-…`).
    pub fn from_pdbedit(output: &str, user: &str) -> Option<NtHash> {
        output.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == user).then_some(())?;
            NtHash::from_hex(f.nth(2)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_what_samba_stored() {
        // `printf 's3cret-pw\ns3cret-pw\n' | smbpasswd -s -a heads; pdbedit -L -w -u heads`
        let line = "heads:4242:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:94B82DF61440B66FC69BE90108EAECF6:[U          ]:LCT-6B172640:";
        let stored = NtHash::from_pdbedit(line, "heads");
        assert_eq!(stored, Some(NtHash::of(b"s3cret-pw")));
        assert_ne!(stored, Some(NtHash::of(b"other")));
        assert_eq!(NtHash::from_pdbedit(line, "head"), None);
        assert_eq!(format!("{:?}", NtHash::of(b"x")), "NtHash(<redacted>)");
    }
}
