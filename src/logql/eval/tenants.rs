//! Multi-tenant reads (`X-Scope-OrgID: a|b`), as Loki's multi-tenant
//! querier: storage stays single-tenant; a query selects streams in each
//! tenant and every stream gets a `__tenant_id__` label (an existing one is
//! kept as `original___tenant_id__`). `__tenant_id__` matchers in the
//! selector choose tenants and are not passed to storage. A single tenant
//! is served exactly as before (no label added).

use crate::labels::Labels;
use crate::storage::{IndexStats, Matcher, SeriesRef, StorageError, Store};

/// The label a multi-tenant query adds to every stream and series.
pub const TENANT_LABEL: &str = "__tenant_id__";
/// Prefix for a stream's own `__tenant_id__` label on multi-tenant queries.
pub const ORIGINAL_TENANT_LABEL: &str = "original___tenant_id__";

/// The tenants named by an `X-Scope-OrgID` value, sorted and deduplicated
/// (dskit's normalisation). `a` gives one tenant.
pub fn split_tenants(org_id: &str) -> Vec<&str> {
    let mut v: Vec<&str> = org_id.split('|').filter(|t| !t.is_empty()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A selected stream with the tenant it lives in.
pub struct TenantSeries<'t> {
    pub tenant: &'t str,
    /// Storage's reference (its labels are the stored ones).
    pub series: SeriesRef,
    /// Labels seen by queries, when they differ from the stored ones.
    view: Option<Labels>,
}

impl TenantSeries<'_> {
    /// The stream's labels as the query sees them.
    pub fn labels(&self) -> &Labels {
        self.view.as_ref().unwrap_or(&self.series.labels)
    }
}

/// Splits `matchers` for a multi-tenant read: the tenants of `tenants` that
/// pass every `__tenant_id__` matcher, and the other matchers.
pub fn filter_tenants<'t>(
    tenants: &[&'t str],
    matchers: &[Matcher],
) -> (Vec<&'t str>, Vec<Matcher>) {
    let (by_tenant, rest): (Vec<&Matcher>, Vec<&Matcher>) =
        matchers.iter().partition(|m| m.name == TENANT_LABEL);
    let kept = tenants
        .iter()
        .copied()
        .filter(|t| by_tenant.iter().all(|m| m.matches(t)))
        .collect();
    (kept, rest.into_iter().cloned().collect())
}

/// `labels` with `__tenant_id__="tenant"` (an existing value is moved to
/// `original___tenant_id__`).
pub fn with_tenant(labels: &Labels, tenant: &str) -> Labels {
    let mut l = labels.clone();
    if let Some(orig) = l.get(TENANT_LABEL).map(str::to_string) {
        l.insert(ORIGINAL_TENANT_LABEL, orig);
    }
    l.insert(TENANT_LABEL, tenant);
    l
}

/// Streams matching `matchers` with entries in `[from, through)` over the
/// tenants of `org_id`.
pub fn select_series<'t>(
    store: &Store,
    org_id: &'t str,
    matchers: &[Matcher],
    from: i64,
    through: i64,
) -> Result<Vec<TenantSeries<'t>>, StorageError> {
    let tenants = split_tenants(org_id);
    if tenants.len() <= 1 {
        let tenant = tenants.first().copied().unwrap_or(org_id);
        return Ok(store
            .select_series(tenant, matchers, from, through)?
            .into_iter()
            .map(|series| TenantSeries {
                tenant,
                series,
                view: None,
            })
            .collect());
    }
    let (kept, rest) = filter_tenants(&tenants, matchers);
    let mut out = Vec::new();
    for tenant in kept {
        for series in store.select_series(tenant, &rest, from, through)? {
            let view = Some(with_tenant(&series.labels, tenant));
            out.push(TenantSeries {
                tenant,
                series,
                view,
            });
        }
    }
    Ok(out)
}

/// Label names over the tenants of `org_id` (with `__tenant_id__` when
/// there are several), sorted.
pub fn label_names(
    store: &Store,
    org_id: &str,
    matchers: &[Matcher],
    from: i64,
    through: i64,
) -> Result<Vec<String>, StorageError> {
    let tenants = split_tenants(org_id);
    if tenants.len() <= 1 {
        return store.label_names(tenants.first().unwrap_or(&org_id), matchers, from, through);
    }
    let (kept, rest) = filter_tenants(&tenants, matchers);
    let mut all = std::collections::BTreeSet::new();
    all.insert(TENANT_LABEL.to_string());
    for t in kept {
        all.extend(store.label_names(t, &rest, from, through)?);
    }
    Ok(all.into_iter().collect())
}

/// Values of label `name` over the tenants of `org_id`, sorted; the values
/// of `__tenant_id__` are the tenants themselves (as in Loki).
pub fn label_values(
    store: &Store,
    org_id: &str,
    name: &str,
    matchers: &[Matcher],
    from: i64,
    through: i64,
) -> Result<Vec<String>, StorageError> {
    let tenants = split_tenants(org_id);
    if name == TENANT_LABEL {
        return Ok(tenants.iter().map(|t| t.to_string()).collect());
    }
    if tenants.len() <= 1 {
        let t = tenants.first().unwrap_or(&org_id);
        return store.label_values(t, name, matchers, from, through);
    }
    let (kept, rest) = filter_tenants(&tenants, matchers);
    let mut all = std::collections::BTreeSet::new();
    for t in kept {
        all.extend(store.label_values(t, name, &rest, from, through)?);
    }
    Ok(all.into_iter().collect())
}

/// Index statistics summed over the tenants of `org_id`.
pub fn index_stats(
    store: &Store,
    org_id: &str,
    matchers: &[Matcher],
    from: i64,
    through: i64,
) -> Result<IndexStats, StorageError> {
    let tenants = split_tenants(org_id);
    if tenants.len() <= 1 {
        return store.index_stats(tenants.first().unwrap_or(&org_id), matchers, from, through);
    }
    let (kept, rest) = filter_tenants(&tenants, matchers);
    let mut sum = IndexStats::default();
    for t in kept {
        let s = store.index_stats(t, &rest, from, through)?;
        sum.streams += s.streams;
        sum.chunks += s.chunks;
        sum.entries += s.entries;
        sum.bytes += s.bytes;
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MatchOp;

    #[test]
    fn tenants_are_sorted_and_deduplicated() {
        assert_eq!(split_tenants("b|a|b"), vec!["a", "b"]);
        assert_eq!(split_tenants("a"), vec!["a"]);
        assert_eq!(split_tenants("a||c"), vec!["a", "c"]);
    }

    #[test]
    fn tenant_matchers_choose_tenants_and_are_removed() {
        let m = vec![
            Matcher::new("app", MatchOp::Eq, "x").unwrap(),
            Matcher::new(TENANT_LABEL, MatchOp::Re, "a|c").unwrap(),
        ];
        let (kept, rest) = filter_tenants(&["a", "b", "c"], &m);
        assert_eq!(kept, vec!["a", "c"]);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].name, "app");
        let m = vec![Matcher::new(TENANT_LABEL, MatchOp::Neq, "a").unwrap()];
        assert_eq!(filter_tenants(&["a", "b"], &m).0, vec!["b"]);
    }

    #[test]
    fn existing_tenant_label_is_kept_as_original() {
        let l = Labels::from_pairs([("app", "x"), (TENANT_LABEL, "mine")]);
        let w = with_tenant(&l, "a");
        assert_eq!(
            w.to_string(),
            r#"{__tenant_id__="a", app="x", original___tenant_id__="mine"}"#
        );
        let w = with_tenant(&Labels::from_pairs([("app", "x")]), "b");
        assert_eq!(w.to_string(), r#"{__tenant_id__="b", app="x"}"#);
    }
}
