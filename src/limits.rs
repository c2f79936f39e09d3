//! Per-tenant limits: one default set plus per-tenant overrides, as Loki's
//! `limits_config` and runtime-config `overrides`. Generic over the limit
//! set, so ingestion ([`crate::ingest::IngestLimits`]) and LogQL
//! ([`crate::logql::eval::QueryLimits`]) each keep their own struct and
//! this module knows neither. Overrides are whole structs built by laying a
//! tenant's TOML keys over the defaults, and are swapped atomically when the
//! config file changes, so a reader always sees one consistent set.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The limits of every tenant: defaults and overrides.
pub struct TenantLimits<T> {
    defaults: Arc<T>,
    overrides: RwLock<Arc<HashMap<String, Arc<T>>>>,
}

impl<T> TenantLimits<T> {
    pub fn new(defaults: T) -> Self {
        TenantLimits {
            defaults: Arc::new(defaults),
            overrides: RwLock::new(Arc::new(HashMap::new())),
        }
    }

    /// The limits of `tenant`: its override, else the defaults.
    pub fn get(&self, tenant: &str) -> Arc<T> {
        self.overrides
            .read()
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| self.defaults.clone())
    }

    pub fn defaults(&self) -> &Arc<T> {
        &self.defaults
    }

    /// Replaces every override at once.
    pub fn set_overrides(&self, overrides: HashMap<String, T>) {
        let m = overrides
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        *self.overrides.write() = Arc::new(m);
    }

    /// The current overrides (a snapshot).
    pub fn overrides(&self) -> Arc<HashMap<String, Arc<T>>> {
        self.overrides.read().clone()
    }
}

/// A limit set as a TOML table (field name → value).
pub fn to_table<T: Serialize>(limits: &T) -> Result<toml::Table, String> {
    toml::Table::try_from(limits).map_err(|e| e.to_string())
}

/// `base` with the fields named in `table` replaced; unknown names and
/// values of the wrong type are errors.
pub fn apply_table<T: Serialize + DeserializeOwned>(
    base: &T,
    table: &toml::Table,
) -> Result<T, String> {
    let mut merged = to_table(base)?;
    for (k, v) in table {
        merged.insert(k.clone(), v.clone());
    }
    toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}

/// Numeric and boolean fields as gauges (`true` is 1; durations in
/// seconds); text and list fields are left out.
pub fn numeric_fields<T: Serialize>(limits: &T) -> Vec<(String, f64)> {
    let Ok(table) = to_table(limits) else {
        return Vec::new();
    };
    let mut out: Vec<(String, f64)> = table
        .into_iter()
        .filter_map(|(k, v)| {
            let f = match v {
                toml::Value::Integer(i) => i as f64,
                toml::Value::Float(f) => f,
                toml::Value::Boolean(b) => f64::from(u8::from(b)),
                toml::Value::String(s) => crate::units::parse_std_duration(&s)?.as_secs_f64(),
                _ => return None,
            };
            Some((k, f))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The smallest positive value of a limit over several tenants, 0 when
/// none sets one: Loki's rule for a multi-tenant query
/// (`SmallestPositiveNonZeroIntPerTenant`).
pub fn smallest_positive<I: IntoIterator<Item = u64>>(values: I) -> u64 {
    values.into_iter().filter(|v| *v > 0).min().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::time::Duration;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct L {
        rate: f64,
        streams: u64,
        strict: bool,
        #[serde(with = "crate::units::serde_duration")]
        timeout: Duration,
        names: Vec<String>,
    }

    impl Default for L {
        fn default() -> Self {
            L {
                rate: 4.0,
                streams: 100,
                strict: false,
                timeout: Duration::from_secs(60),
                names: vec!["a".into()],
            }
        }
    }

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn overrides_replace_only_named_fields() {
        let base = L {
            streams: 7,
            ..L::default()
        };
        let t = apply_table(&base, &table("rate = 1.5\ntimeout = \"2m\"")).unwrap();
        assert_eq!(t.rate, 1.5);
        assert_eq!(t.timeout, Duration::from_secs(120));
        // Not named: kept from the base, not from Default.
        assert_eq!(t.streams, 7);
        assert_eq!(t.names, vec!["a".to_string()]);
        let e = apply_table(&base, &table("nope = 1")).unwrap_err();
        assert!(e.contains("nope"), "{e}");
        let e = apply_table(&base, &table("streams = \"many\"")).unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn get_falls_back_to_defaults_and_swaps_whole() {
        let tl = TenantLimits::new(L::default());
        assert_eq!(tl.get("x").streams, 100);
        tl.set_overrides(HashMap::from([(
            "x".to_string(),
            L {
                streams: 5,
                ..L::default()
            },
        )]));
        assert_eq!(tl.get("x").streams, 5);
        assert_eq!(tl.get("y").streams, 100);
        tl.set_overrides(HashMap::new());
        assert_eq!(tl.get("x").streams, 100);
    }

    #[test]
    fn numeric_fields_for_metrics() {
        let f = numeric_fields(&L::default());
        assert_eq!(
            f,
            vec![
                ("rate".to_string(), 4.0),
                ("streams".to_string(), 100.0),
                ("strict".to_string(), 0.0),
                ("timeout".to_string(), 60.0),
            ]
        );
    }

    #[test]
    fn smallest_positive_ignores_zero() {
        assert_eq!(smallest_positive([0, 30, 10]), 10);
        assert_eq!(smallest_positive([0, 0]), 0);
        assert_eq!(smallest_positive([]), 0);
    }
}
