//! Built-in access control (`--auth-tokens-file`): a TOML file maps bearer
//! tokens (or `user:password` pairs for basic auth) to the tenants they may
//! read and write. [`AuthTokens::authorize`] is the one check used by the
//! HTTP middleware and by the OTLP/gRPC receiver. Token text is never
//! logged, echoed in errors, or printed by `Debug`.
//!
//! ```toml
//! [[token]]
//! token = "s3cret"            # Authorization: Bearer s3cret
//! read = ["team-a", "team-b"]
//! write = ["team-a"]
//!
//! [[token]]
//! token = "grafana:pa55word"  # Authorization: Basic base64(grafana:pa55word)
//! read = ["*"]                # every tenant
//! ```

use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use crate::api::error::ApiError;

/// What a request does to a tenant's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: String,
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
}

/// The loaded tokens file.
pub struct AuthTokens {
    entries: Vec<TokenEntry>,
}

impl std::fmt::Debug for AuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthTokens({} tokens, redacted)", self.entries.len())
    }
}

/// Why a tokens file cannot be used. Messages never contain token text.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read auth tokens file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid auth tokens file {path}: {detail}")]
    Invalid { path: String, detail: String },
}

impl AuthTokens {
    /// Reads and checks a tokens file.
    pub fn load(path: &Path) -> Result<AuthTokens, AuthFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: p.clone(),
            source,
        })?;
        AuthTokens::parse(&text).map_err(|detail| AuthFileError::Invalid { path: p, detail })
    }

    /// Parses the TOML text of a tokens file.
    pub fn parse(text: &str) -> Result<AuthTokens, String> {
        // toml's error messages quote the offending line, which may hold a
        // token: keep only the position-free description.
        let file: TokensFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if file.token.is_empty() {
            return Err("no [[token]] entries".into());
        }
        for (i, e) in file.token.iter().enumerate() {
            if e.token.trim().is_empty() {
                return Err(format!("[[token]] #{} has an empty token", i + 1));
            }
        }
        Ok(AuthTokens {
            entries: file.token,
        })
    }

    /// Checks a request: `authorization` is the `Authorization` header
    /// (`Bearer <token>` or `Basic <base64(user:password)>`), `org_id` the
    /// `X-Scope-OrgID` header. Returns the tenant string to use (the header
    /// itself, or the token's single tenant for `access` when the header is
    /// absent). 401 without a known token, 403 when a tenant named in the
    /// header is not allowed for `access`.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        org_id: Option<&str>,
        access: Access,
    ) -> Result<String, ApiError> {
        let entry = authorization
            .and_then(presented_secret)
            .and_then(|secret| {
                // Compare against every entry so that timing does not reveal
                // which one matched.
                let mut found = None;
                for e in &self.entries {
                    if ct_eq(e.token.as_bytes(), secret.as_bytes()) && found.is_none() {
                        found = Some(e);
                    }
                }
                found
            })
            .ok_or_else(|| ApiError::new(401, "unauthorized: missing or invalid credentials"))?;
        let allowed = match access {
            Access::Read => &entry.read,
            Access::Write => &entry.write,
        };
        let verb = match access {
            Access::Read => "read",
            Access::Write => "write",
        };
        match org_id.map(str::trim).filter(|s| !s.is_empty()) {
            Some(header) => {
                for t in header.split('|') {
                    if !allowed.iter().any(|a| a == "*" || a == t) {
                        return Err(ApiError::new(
                            403,
                            format!("forbidden: not allowed to {verb} tenant {t:?}"),
                        ));
                    }
                }
                Ok(header.to_string())
            }
            None => match allowed.as_slice() {
                [only] if only != "*" => Ok(only.clone()),
                [] => Err(ApiError::new(
                    403,
                    format!("forbidden: not allowed to {verb} any tenant"),
                )),
                _ => Err(ApiError::new(401, "no org id")),
            },
        }
    }
}

/// The secret carried by an `Authorization` header value: the bearer token,
/// or `user:password` decoded from basic auth.
fn presented_secret(value: &str) -> Option<String> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.to_string())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        String::from_utf8(raw).ok()
    } else {
        None
    }
}

/// Constant-time equality for equal lengths (length itself is not hidden).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[token]]
token = "tok-a"
read = ["a", "b"]
write = ["a"]

[[token]]
token = "graf:pw"
read = ["*"]
"#;

    fn tokens() -> AuthTokens {
        AuthTokens::parse(FILE).expect("valid file")
    }

    #[test]
    fn bearer_with_header_and_default_tenant() {
        let t = tokens();
        assert_eq!(
            t.authorize(Some("Bearer tok-a"), Some("a"), Access::Write)
                .unwrap(),
            "a"
        );
        // Single write tenant: the header may be left out.
        assert_eq!(
            t.authorize(Some("Bearer tok-a"), None, Access::Write)
                .unwrap(),
            "a"
        );
        // Two read tenants: no default, Loki's "no org id".
        let e = t
            .authorize(Some("Bearer tok-a"), None, Access::Read)
            .unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (401, "no org id"));
        assert_eq!(
            t.authorize(Some("bearer  tok-a "), Some("a|b"), Access::Read)
                .unwrap(),
            "a|b"
        );
    }

    #[test]
    fn wrong_or_missing_token_is_401_without_echo() {
        let t = tokens();
        for auth in [
            None,
            Some("Bearer nope"),
            Some("Bearer tok-"),
            Some("tok-a"),
            Some("Token tok-a"),
        ] {
            let e = t.authorize(auth, Some("a"), Access::Read).unwrap_err();
            assert_eq!(e.status, 401, "{auth:?}");
            assert!(!e.message.contains("tok"), "{}", e.message);
        }
    }

    #[test]
    fn tenant_not_allowed_is_403() {
        let t = tokens();
        let e = t
            .authorize(Some("Bearer tok-a"), Some("b"), Access::Write)
            .unwrap_err();
        assert_eq!(e.status, 403);
        let e = t
            .authorize(Some("Bearer tok-a"), Some("a|c"), Access::Read)
            .unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.message.contains("\"c\""));
    }

    #[test]
    fn basic_auth_and_wildcard() {
        let t = tokens();
        // base64("graf:pw") = "Z3JhZjpwdw=="
        assert_eq!(
            t.authorize(Some("Basic Z3JhZjpwdw=="), Some("x|y"), Access::Read)
                .unwrap(),
            "x|y"
        );
        // A wildcard is never a default tenant.
        assert_eq!(
            t.authorize(Some("Basic Z3JhZjpwdw=="), None, Access::Read)
                .unwrap_err()
                .status,
            401
        );
        // No write list: 403 for every tenant.
        assert_eq!(
            t.authorize(Some("Basic Z3JhZjpwdw=="), Some("x"), Access::Write)
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(
            t.authorize(Some("Basic !!notbase64"), Some("x"), Access::Read)
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn bad_files_are_rejected_without_token_text() {
        assert!(AuthTokens::parse("").is_err());
        assert!(AuthTokens::parse("[[token]]\ntoken = \"\"\n").is_err());
        let e = AuthTokens::parse("[[token]]\ntoken = \"hunter2\"\nreed = [\"a\"]\n")
            .err()
            .unwrap();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!format!("{:?}", tokens()).contains("tok-a"));
    }
}
