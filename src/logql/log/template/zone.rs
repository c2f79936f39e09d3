//! Time zones for `toDateInZone`: IANA zones read from the system's
//! zoneinfo database (TZif files, as Go's `time.LoadLocation` does),
//! cached per name. Unknown zones fall back to UTC, as in Loki.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::timefmt::Abbr;

/// Where zoneinfo files live (Go also honours `$ZONEINFO`).
const ZONEINFO_DIRS: [&str; 3] = [
    "/usr/share/zoneinfo",
    "/usr/lib/zoneinfo",
    "/usr/share/lib/zoneinfo",
];
/// Zone files larger than this are not zone files.
const MAX_TZIF: u64 = 1 << 20;
/// How many distinct zone names are remembered.
const MAX_CACHED: usize = 256;

/// A zone's UTC offsets over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// (transition time in Unix seconds, offset and abbreviation in effect
    /// from then), sorted.
    transitions: Vec<(i64, i32, Abbr)>,
    /// The offset and abbreviation before the first transition.
    initial: (i32, Abbr),
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            transitions: Vec::new(),
            initial: (0, Abbr::new("UTC")),
        }
    }

    /// The offset and abbreviation in effect at a UTC instant.
    pub fn offset_at(&self, unix: i64) -> (i32, Abbr) {
        match self.transitions.partition_point(|(t, _, _)| *t <= unix) {
            0 => self.initial,
            i => {
                let (_, o, a) = self.transitions[i - 1];
                (o, a)
            }
        }
    }

    /// The offset for a wall-clock time given as if it were UTC, resolved
    /// like Go's `time.Date`.
    pub fn offset_for_local(&self, local: i64) -> (i32, Abbr) {
        let first = self.offset_at(local);
        let second = self.offset_at(local - first.0 as i64);
        if second.0 == first.0 {
            first
        } else {
            second
        }
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a TZif file (versions 1 to 4; the 64-bit block when present).
pub fn parse_tzif(b: &[u8]) -> Option<Zone> {
    if b.get(..4)? != b"TZif" {
        return None;
    }
    let counts = |h: usize| -> Option<[usize; 6]> {
        let mut c = [0usize; 6];
        for (i, v) in c.iter_mut().enumerate() {
            *v = be32(b, h + 20 + 4 * i)? as usize;
        }
        Some(c)
    };
    let [isut, isstd, leap, timecnt, typecnt, charcnt] = counts(0)?;
    let v1_len = timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isut;
    let (h, time_size) = if *b.get(4)? >= b'2' {
        (44 + v1_len, 8)
    } else {
        (0, 4)
    };
    let [_, _, _, timecnt, typecnt, _] = if h > 0 {
        counts(h)?
    } else {
        [0, 0, 0, timecnt, typecnt, 0]
    };
    if typecnt == 0 || typecnt > 256 {
        return None;
    }
    let times_at = h + 44;
    let idx_at = times_at + timecnt * time_size;
    let types_at = idx_at + timecnt;
    let chars_at = types_at + 6 * typecnt;
    let mut types = Vec::with_capacity(typecnt);
    for i in 0..typecnt {
        let at = types_at + 6 * i;
        let off = be32(b, at)? as i32;
        let isdst = *b.get(at + 4)? != 0;
        let idx = *b.get(at + 5)? as usize;
        let name = b.get(chars_at + idx..).unwrap_or(&[]);
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        let abbr = std::str::from_utf8(&name[..end])
            .map(Abbr::new)
            .unwrap_or_default();
        types.push((off, isdst, abbr));
    }
    let mut transitions = Vec::with_capacity(timecnt);
    for i in 0..timecnt {
        let at = times_at + i * time_size;
        let t = if time_size == 8 {
            i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?)
        } else {
            be32(b, at)? as i32 as i64
        };
        let ty = *b.get(idx_at + i)? as usize;
        let (off, _, abbr) = *types.get(ty)?;
        transitions.push((t, off, abbr));
    }
    // Go: before the first transition, the first standard-time type.
    let first = types.iter().find(|(_, dst, _)| !dst).unwrap_or(&types[0]);
    let initial = (first.0, first.2);
    Some(Zone {
        transitions,
        initial,
    })
}

fn valid_name(zone: &str) -> bool {
    !zone.is_empty()
        && zone.len() < 64
        && !zone.starts_with('/')
        && !zone
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && zone
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"/_+-".contains(&c))
}

fn load(zone: &str) -> Option<Zone> {
    if !valid_name(zone) {
        return None;
    }
    for dir in ZONEINFO_DIRS {
        let path = std::path::Path::new(dir).join(zone);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() > MAX_TZIF {
            continue;
        }
        if let Some(z) = std::fs::read(&path).ok().and_then(|b| parse_tzif(&b)) {
            return Some(z);
        }
    }
    None
}

/// The zone for a name as Go's `time.LoadLocation` resolves it; `None`
/// when unknown (callers fall back to UTC).
pub fn lookup(zone: &str) -> Option<Arc<Zone>> {
    if matches!(zone, "" | "UTC" | "Local") {
        return Some(Arc::new(Zone::utc()));
    }
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Arc<Zone>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(z) = cache.lock().get(zone) {
        return z.clone();
    }
    let z = load(zone).map(Arc::new);
    let mut c = cache.lock();
    if c.len() < MAX_CACHED {
        c.insert(zone.to_string(), z.clone());
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built TZif v1 file: one transition at t=1000 from +3600
    /// (standard) to +7200 (DST).
    fn tzif() -> Vec<u8> {
        let mut b = b"TZif".to_vec();
        b.push(0);
        b.extend([0u8; 15]);
        for c in [0u32, 0, 0, 1, 2, 8] {
            b.extend(c.to_be_bytes());
        }
        b.extend(1000i32.to_be_bytes());
        b.push(1);
        b.extend(3600i32.to_be_bytes());
        b.extend([0, 0]);
        b.extend(7200i32.to_be_bytes());
        b.extend([1, 4]);
        b.extend(b"CET\0CEST");
        b
    }

    #[test]
    fn parses_tzif_and_resolves_offsets() {
        let z = parse_tzif(&tzif()).unwrap();
        assert_eq!(z.offset_at(999), (3600, Abbr::new("CET")));
        assert_eq!(z.offset_at(1000), (7200, Abbr::new("CEST")));
        // Wall clock 10000 is after the transition in either reading.
        assert_eq!(z.offset_for_local(10_000).0, 7200);
        assert!(parse_tzif(b"TZif").is_none());
        assert!(parse_tzif(b"nope").is_none());
        assert!(parse_tzif(&tzif()[..50]).is_none());
    }

    #[test]
    fn rejects_path_tricks() {
        assert!(!valid_name("../etc/passwd"));
        assert!(!valid_name("/etc/passwd"));
        assert!(!valid_name("Europe/../../x"));
        assert!(valid_name("America/Argentina/Buenos_Aires"));
        assert!(valid_name("Etc/GMT+5"));
    }

    #[test]
    fn system_zones_when_installed() {
        // Only meaningful where the zoneinfo database exists.
        if let Some(z) = lookup("Europe/Paris") {
            // 2021-01-15T12:00:00Z: CET (+1); 2021-07-15T12:00:00Z: CEST (+2).
            assert_eq!(z.offset_at(1_610_712_000), (3600, Abbr::new("CET")));
            assert_eq!(z.offset_at(1_626_350_400), (7200, Abbr::new("CEST")));
        }
        assert!(lookup("No/Such_Zone").is_none());
    }
}
