//! API tokens: who may call the public services (REST and gRPC alike).
//!
//! A caller presents `Authorization: Bearer TOKEN`. With no tokens
//! configured every caller is allowed (what a server on loopback does);
//! with tokens, a missing or unknown token is [`ErrorCode::Unauthenticated`]
//! (HTTP 401) and a read-only token asking to change something is
//! [`ErrorCode::PermissionDenied`] (HTTP 403).

use std::{fmt, net::SocketAddr};

use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// What a token may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read tasks, reports, tags, notes and samples.
    Read,
    /// Also submit, delete, tag and annotate.
    #[default]
    Write,
}

/// One accepted token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Shown in logs instead of the token.
    pub name: String,
    pub token: String,
    #[serde(default)]
    pub role: Role,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// The `[auth]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<Token>,
}

/// Why a call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    pub code: ErrorCode,
    pub message: String,
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Refuses a server that would listen beyond loopback with no token
    /// required; checks tokens are usable.
    pub fn check_listen(&self, what: &str, addr: SocketAddr) -> Result<(), String> {
        for (i, t) in self.tokens.iter().enumerate() {
            if t.token.len() < 16 {
                return Err(format!(
                    "auth token `{}` is shorter than 16 characters",
                    t.name
                ));
            }
            // One secret with two roles would take whichever comes first.
            if let Some(other) = self.tokens[..i].iter().find(|o| o.token == t.token) {
                return Err(format!(
                    "auth tokens `{}` and `{}` are the same secret",
                    other.name, t.name
                ));
            }
        }
        if !self.enabled() && !addr.ip().is_loopback() {
            return Err(format!(
                "{what} would listen on {addr}, beyond loopback, with no API token: \
                 add tokens under [auth] (or listen on 127.0.0.1)"
            ));
        }
        Ok(())
    }

    /// Checks an `Authorization` header value for a call that needs `need`.
    /// Returns the token's name (empty when auth is off).
    pub fn authorize(&self, header: Option<&str>, need: Role) -> Result<&str, AuthError> {
        if !self.enabled() {
            return Ok("");
        }
        let refuse = |code, message: &str| AuthError {
            code,
            message: message.to_owned(),
        };
        let Some(header) = header else {
            return Err(refuse(
                ErrorCode::Unauthenticated,
                "an API token is required: send `Authorization: Bearer TOKEN`",
            ));
        };
        let presented = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                refuse(
                    ErrorCode::Unauthenticated,
                    "the Authorization header must be `Bearer TOKEN`",
                )
            })?;
        let token = self
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), presented.as_bytes()))
            .ok_or_else(|| refuse(ErrorCode::Unauthenticated, "unknown API token"))?;
        if token.role < need {
            return Err(refuse(
                ErrorCode::PermissionDenied,
                "this API token may only read; the call changes data",
            ));
        }
        Ok(&token.name)
    }
}

impl AuthConfig {
    /// [`AuthConfig::authorize`] for a gRPC call (its `authorization`
    /// metadata).
    pub fn authorize_grpc<T>(
        &self,
        request: &tonic::Request<T>,
        need: Role,
    ) -> Result<(), tonic::Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.authorize(header, need)
            .map(|_| ())
            .map_err(|e| tonic::Status::new(e.code.grpc_code(), e.message))
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            tokens: vec![
                Token {
                    name: "analyst".into(),
                    token: "w".repeat(20),
                    role: Role::Write,
                },
                Token {
                    name: "viewer".into(),
                    token: "r".repeat(20),
                    role: Role::Read,
                },
            ],
        }
    }

    #[test]
    fn no_tokens_allows_everyone_but_only_on_loopback() {
        let open = AuthConfig::default();
        assert_eq!(open.authorize(None, Role::Write), Ok(""));
        assert!(
            open.check_listen("gateway", "127.0.0.1:8080".parse().unwrap())
                .is_ok()
        );
        let err = open
            .check_listen("gateway", "0.0.0.0:8080".parse().unwrap())
            .unwrap_err();
        assert!(err.contains("beyond loopback"), "{err}");
        assert!(
            config()
                .check_listen("gateway", "0.0.0.0:8080".parse().unwrap())
                .is_ok()
        );
    }

    #[test]
    fn missing_and_unknown_tokens_are_401_and_a_reader_writing_is_403() {
        let c = config();
        let code = |h: Option<&str>, need| c.authorize(h, need).map_err(|e| e.code);
        assert_eq!(code(None, Role::Read), Err(ErrorCode::Unauthenticated));
        let bad = format!("Bearer {}", "x".repeat(20));
        assert_eq!(
            code(Some(&bad), Role::Read),
            Err(ErrorCode::Unauthenticated)
        );
        let basic = format!("Basic {}", "w".repeat(20));
        assert_eq!(
            code(Some(&basic), Role::Read),
            Err(ErrorCode::Unauthenticated)
        );
        let reader = format!("Bearer {}", "r".repeat(20));
        assert_eq!(code(Some(&reader), Role::Read), Ok("viewer"));
        assert_eq!(
            code(Some(&reader), Role::Write),
            Err(ErrorCode::PermissionDenied)
        );
        let writer = format!("Bearer {}", "w".repeat(20));
        assert_eq!(code(Some(&writer), Role::Write), Ok("analyst"));
    }

    #[test]
    fn short_tokens_are_refused() {
        let c = AuthConfig {
            tokens: vec![Token {
                name: "t".into(),
                token: "short".into(),
                role: Role::Read,
            }],
        };
        assert!(
            c.check_listen("scheduler", "127.0.0.1:1".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn one_secret_under_two_names_is_refused() {
        let mut c = config();
        c.tokens[1].token = c.tokens[0].token.clone();
        let err = c
            .check_listen("gateway", "127.0.0.1:1".parse().unwrap())
            .unwrap_err();
        assert!(err.contains("`analyst` and `viewer`"), "{err}");
    }
}
