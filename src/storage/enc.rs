//! Byte-level helpers shared by every file format: LEB128 varints, a
//! bounds-checked reader that turns any short or malformed input into an
//! error instead of a panic, and the escaping of tenant names into paths.

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `v` zig-zag encoded as a varint.
#[inline]
pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends a varint length followed by the bytes.
#[inline]
pub fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A decoding error: what was expected, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type DecodeResult<T> = Result<T, DecodeError>;

/// A cursor over untrusted bytes; every read is bounds-checked.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn err<T>(&self, what: &str) -> DecodeResult<T> {
        Err(DecodeError(format!("{what} at offset {}", self.pos)))
    }

    pub fn uvarint(&mut self) -> DecodeResult<u64> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                return self.err("truncated varint");
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return self.err("varint overflows 64 bits");
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return self.err("varint too long");
            }
        }
    }

    pub fn varint(&mut self) -> DecodeResult<i64> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint that must fit `usize` and not exceed `max`.
    pub fn len(&mut self, max: usize) -> DecodeResult<usize> {
        let v = self.uvarint()?;
        if v > max as u64 {
            return self.err("length out of range");
        }
        Ok(v as usize)
    }

    pub fn bytes(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if n > self.remaining() {
            return self.err("truncated data");
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A varint length followed by that many bytes.
    pub fn len_bytes(&mut self) -> DecodeResult<&'a [u8]> {
        let n = self.len(self.remaining())?;
        self.bytes(n)
    }

    pub fn str(&mut self) -> DecodeResult<&'a str> {
        let b = self.len_bytes()?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s),
            Err(_) => self.err("invalid UTF-8"),
        }
    }

    pub fn u32(&mut self) -> DecodeResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> DecodeResult<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn i64(&mut self) -> DecodeResult<i64> {
        Ok(self.u64()? as i64)
    }
}

/// Escapes a tenant name into one path component: bytes outside
/// `[A-Za-z0-9_-]` become `%XX`, so `.`/`..`/`/`/NUL can never reach the
/// file system as such, and the mapping is reversible.
pub fn escape_tenant(t: &str) -> String {
    let mut s = String::with_capacity(t.len());
    for &b in t.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            s.push(b as char);
        } else {
            s.push('%');
            s.push_str(&format!("{b:02X}"));
        }
    }
    s
}

/// The inverse of [`escape_tenant`]; `None` for names it cannot produce.
pub fn unescape_tenant(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|t| !t.is_empty())
}

/// Whether a tenant name is acceptable at all (Loki caps it at 150 bytes).
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty() && t.len() <= 150 && !t.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        let mut b = Vec::new();
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MAX, i64::MIN] {
            put_varint(&mut b, v);
        }
        put_uvarint(&mut b, u64::MAX);
        let mut r = Reader::new(&b);
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MAX, i64::MIN] {
            assert_eq!(r.varint().unwrap(), v);
        }
        assert_eq!(r.uvarint().unwrap(), u64::MAX);
        assert!(r.is_empty());
        // 300 = 0b1_0010_1100 -> 0xAC 0x02
        let mut b = Vec::new();
        put_uvarint(&mut b, 300);
        assert_eq!(b, [0xAC, 0x02]);
    }

    #[test]
    fn bad_varints_are_errors() {
        assert!(Reader::new(&[0x80]).uvarint().is_err());
        assert!(Reader::new(&[0xff; 11]).uvarint().is_err());
        assert!(Reader::new(&[0x05, 1, 2]).len_bytes().is_err());
    }

    #[test]
    fn tenant_escaping() {
        assert_eq!(escape_tenant("fake"), "fake");
        assert_eq!(escape_tenant(".."), "%2E%2E");
        assert_eq!(escape_tenant("a/b"), "a%2Fb");
        for t in ["..", "a/b", "x%y", "tenant.1", "é"] {
            assert_eq!(unescape_tenant(&escape_tenant(t)).as_deref(), Some(t));
        }
        assert!(!valid_tenant(""));
        assert!(!valid_tenant("a\0b"));
    }
}
