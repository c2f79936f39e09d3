//! `ip("...")` matching for line filters and label filters: a single
//! address, a CIDR prefix or an `a-b` range, IPv4 or IPv6. Lines are scanned
//! for IP-looking tokens, as Loki does.

use std::net::IpAddr;

use super::PipelineError;

/// A compiled `ip("...")` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpMatcher {
    Addr(IpAddr),
    /// Network address bits (as u128; IPv4 in the low 32 bits) and length.
    Cidr {
        v6: bool,
        net: u128,
        bits: u32,
    },
    Range {
        v6: bool,
        lo: u128,
        hi: u128,
    },
}

fn to_u128(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

impl IpMatcher {
    /// Parses `pattern`; the error text follows Loki's.
    pub fn new(pattern: &str) -> Result<IpMatcher, PipelineError> {
        let bad = || PipelineError(format!("ip: invalid pattern: {pattern:?}"));
        if let Some((a, b)) = pattern.split_once('-') {
            let (va, lo) = to_u128(parse_ip(a).ok_or_else(bad)?);
            let (vb, hi) = to_u128(parse_ip(b).ok_or_else(bad)?);
            if va != vb || lo > hi {
                return Err(bad());
            }
            return Ok(IpMatcher::Range { v6: va, lo, hi });
        }
        if let Some((a, n)) = pattern.split_once('/') {
            let (v6, ip) = to_u128(parse_ip(a).ok_or_else(bad)?);
            let bits: u32 = n.parse().map_err(|_| bad())?;
            let max = if v6 { 128 } else { 32 };
            if bits > max {
                return Err(bad());
            }
            let net = ip & mask(v6, bits);
            return Ok(IpMatcher::Cidr { v6, net, bits });
        }
        Ok(IpMatcher::Addr(parse_ip(pattern).ok_or_else(bad)?))
    }

    /// True when `ip` is matched.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v6, x) = to_u128(ip);
        match *self {
            IpMatcher::Addr(a) => a == ip,
            IpMatcher::Cidr { v6: w, net, bits } => w == v6 && x & mask(v6, bits) == net,
            IpMatcher::Range { v6: w, lo, hi } => w == v6 && lo <= x && x <= hi,
        }
    }

    /// True when some IP-looking token of `text` is matched.
    pub fn matches_text(&self, text: &[u8]) -> bool {
        let n = text.len();
        let at = |i: usize| text.get(i).copied().unwrap_or(0);
        let mut i = 0;
        while i < n {
            let v4 = at(i).is_ascii_digit()
                && (at(i + 1) == b'.' || at(i + 2) == b'.' || at(i + 3) == b'.');
            if v4 || ipv6_hint(&[at(i), at(i + 1), at(i + 2), at(i + 3), at(i + 4)]) {
                // As Loki: an IPv4 token takes only digits and dots, so
                // that `10.0.0.1:8080` yields `10.0.0.1`.
                let len = text[i..]
                    .iter()
                    .take_while(|c| {
                        c.is_ascii_digit()
                            || **c == b'.'
                            || (!v4 && (c.is_ascii_hexdigit() || **c == b':'))
                    })
                    .count();
                let tok = &text[i..i + len];
                if let Some(ip) = std::str::from_utf8(tok)
                    .ok()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                {
                    if self.contains(ip) {
                        return true;
                    }
                }
                i += len.max(1);
                continue;
            }
            i += 1;
        }
        false
    }
}

fn ipv6_hint(p: &[u8; 5]) -> bool {
    let h = |c: u8| c.is_ascii_hexdigit();
    (p[0] == b':' && p[1] == b':' && h(p[2]))
        || (h(p[0]) && p[1] == b':')
        || (h(p[0]) && h(p[1]) && p[2] == b':')
        || (h(p[0]) && h(p[1]) && h(p[2]) && p[3] == b':')
        || (h(p[0]) && h(p[1]) && h(p[2]) && h(p[3]) && p[4] == b':')
}

fn mask(v6: bool, bits: u32) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if bits == 0 {
        return 0;
    }
    let all: u128 = if v6 { u128::MAX } else { u32::MAX as u128 };
    (all >> (width - bits)) << (width - bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_address_cidr_and_range() {
        let a = IpMatcher::new("192.168.0.1").unwrap();
        assert!(a.matches_text(b"from 192.168.0.1 port 22"));
        assert!(!a.matches_text(b"from 192.168.0.10 port 22"));
        let c = IpMatcher::new("192.168.4.0/22").unwrap();
        assert!(c.matches_text(b"src=192.168.7.255"));
        assert!(!c.matches_text(b"src=192.168.8.0"));
        let r = IpMatcher::new("10.0.0.1-10.0.0.9").unwrap();
        assert!(r.matches_text(b"10.0.0.9 GET /"));
        assert!(!r.matches_text(b"10.0.0.10 GET /"));
        assert!(!r.matches_text(b"no ip here 1.2"));
    }

    #[test]
    fn ipv6_and_errors() {
        let a = IpMatcher::new("::1").unwrap();
        assert!(a.matches_text(b"connect from ::1 ok"));
        let c = IpMatcher::new("2001:db8::/32").unwrap();
        assert!(c.matches_text(b"peer 2001:db8:1::5 up"));
        assert!(!c.matches_text(b"peer 2001:db9::5 up"));
        assert!(!c.matches_text(b"peer 10.0.0.1 up"));
        assert!(IpMatcher::new("300.1.1.1").is_err());
        assert!(IpMatcher::new("10.0.0.9-10.0.0.1").is_err());
        assert!(IpMatcher::new("1.2.3.4/33").is_err());
    }

    #[test]
    fn ipv4_followed_by_port_still_matches() {
        let r = IpMatcher::new("10.250.0.0-10.251.255.255").unwrap();
        assert!(r.matches_text(b"blockMap updated: 10.251.73.220:50010 is added"));
        assert!(!r.matches_text(b"blockMap updated: 10.252.73.220:50010 is added"));
        let a = IpMatcher::new("10.0.0.1").unwrap();
        assert!(a.matches_text(b"peer=10.0.0.1:80"));
    }

    #[test]
    fn loghub_sshd_line() {
        // OpenSSH sample from loghub.
        let line = b"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186";
        assert!(IpMatcher::new("173.234.31.0/24")
            .unwrap()
            .matches_text(line));
        assert!(!IpMatcher::new("173.234.30.0/24")
            .unwrap()
            .matches_text(line));
    }
}
