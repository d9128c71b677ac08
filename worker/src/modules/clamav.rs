//! `clamav`: the sample streamed to a running clamd (ClamAV's daemon) with
//! its `INSTREAM` command, over a Unix socket or TCP. The daemon unpacks
//! archives, installers and packed executables itself; the result names the
//! signature that matched, if one did, and the engine that answered.
//!
//! clamd's protocol: a command prefixed with `z` ends with a NUL, and so
//! does the reply. `zINSTREAM\0` is followed by chunks, each a 4-byte
//! big-endian length and that many bytes, ended by a zero length; the reply
//! is `stream: OK`, `stream: NAME FOUND` or `MESSAGE ERROR`.

use std::{path::Path, time::Duration};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::module::{Module, ModuleError, ModuleOutput, ScanInput};

/// Bytes sent per `INSTREAM` chunk.
const CHUNK: usize = 64 * 1024;
/// Longest reply read from clamd.
const MAX_REPLY: u64 = 64 * 1024;

/// Settings of the `clamav` module (`[worker.modules.clamav]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClamavConfig {
    /// clamd's socket: a path (its `LocalSocket`) or `HOST:PORT` (its
    /// `TCPSocket`).
    pub address: String,
    /// Longest wait to connect, in seconds.
    pub connect_timeout_secs: u64,
}

impl Default for ClamavConfig {
    fn default() -> Self {
        Self {
            // Where Debian's clamav-daemon listens.
            address: "/var/run/clamav/clamd.ctl".into(),
            connect_timeout_secs: 5,
        }
    }
}

#[derive(Debug)]
pub struct Clamav {
    pub config: ClamavConfig,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Whether `address` names a TCP endpoint rather than a socket file.
fn is_tcp(address: &str) -> bool {
    !address.starts_with('/') && !address.starts_with('.') && address.contains(':')
}

async fn connect(config: &ClamavConfig) -> Result<Box<dyn Stream>, String> {
    let address = config.address.as_str();
    let timeout = Duration::from_secs(config.connect_timeout_secs.max(1));
    let attempt = async {
        if is_tcp(address) {
            let s = tokio::net::TcpStream::connect(address).await?;
            Ok::<Box<dyn Stream>, std::io::Error>(Box::new(s))
        } else {
            let s = tokio::net::UnixStream::connect(address).await?;
            Ok::<Box<dyn Stream>, std::io::Error>(Box::new(s))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("clamd at {address} is not reachable: {e}")),
        Err(_) => Err(format!(
            "clamd at {address} did not accept a connection within {}s",
            timeout.as_secs()
        )),
    }
}

/// Reads a NUL-terminated reply (or one the daemon ended by closing). A
/// daemon that refused a stream closes with our bytes unread, and the
/// socket reports a reset right after its reply: what came before counts.
async fn reply(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.contains(&0) && (buf.len() as u64) < MAX_REPLY {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) if !buf.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    if let Some(end) = buf.iter().position(|&b| b == 0) {
        buf.truncate(end);
    }
    Ok(String::from_utf8_lossy(&buf).trim().to_owned())
}

/// Sends one command without payload and returns the reply.
async fn command(config: &ClamavConfig, name: &str) -> Result<String, String> {
    let mut s = connect(config).await?;
    s.write_all(format!("z{name}\0").as_bytes())
        .await
        .map_err(|e| format!("clamd at {}: sending {name}: {e}", config.address))?;
    reply(&mut s).await.map_err(|e| {
        format!(
            "clamd at {}: reading the reply to {name}: {e}",
            config.address
        )
    })
}

/// Streams `path` with `INSTREAM` and returns clamd's reply.
async fn instream(config: &ClamavConfig, path: &Path) -> Result<String, ModuleError> {
    let mut file = tokio::fs::File::open(path).await?;
    let s = connect(config).await.map_err(ModuleError::Failed)?;
    let (mut rx, mut tx) = tokio::io::split(s);
    let send = async {
        let mut buf = vec![0u8; CHUNK];
        tx.write_all(b"zINSTREAM\0").await?;
        loop {
            let n = file.read(&mut buf).await?;
            tx.write_all(&(n as u32).to_be_bytes()).await?;
            if n == 0 {
                break;
            }
            tx.write_all(&buf[..n]).await?;
        }
        tx.flush().await
    };
    // A daemon that refuses the stream (too long) answers and closes while
    // we are still sending: the reply is read all along, and says why.
    let (sent, answer) = tokio::join!(send, reply(&mut rx));
    match (sent, answer) {
        (_, Ok(text)) if !text.is_empty() => Ok(text),
        (Err(e), _) => Err(ModuleError::Failed(format!(
            "clamd at {} closed the stream: {e}",
            config.address
        ))),
        (Ok(()), Err(e)) => Err(ModuleError::Failed(format!(
            "clamd at {}: reading the verdict: {e}",
            config.address
        ))),
        (Ok(()), Ok(_)) => Err(ModuleError::Failed(format!(
            "clamd at {} closed the connection without a verdict",
            config.address
        ))),
    }
}

/// Turns clamd's reply to `INSTREAM` into the module's result.
fn verdict(reply: &str, engine: &str) -> Result<Value, ModuleError> {
    let body = reply.strip_prefix("stream:").map(str::trim);
    match body {
        Some("OK") => Ok(json!({"infected": false, "engine": engine})),
        Some(b) if b.ends_with(" FOUND") => Ok(json!({
            "infected": true,
            "detection": b.trim_end_matches(" FOUND"),
            "engine": engine,
        })),
        _ => Err(ModuleError::Failed(format!(
            "clamd could not scan the file: {}",
            reply.trim_end_matches(" ERROR")
        ))),
    }
}

impl Module for Clamav {
    fn name(&self) -> &'static str {
        "clamav"
    }

    fn version(&self) -> &'static str {
        "1.0.0"
    }

    fn module_type(&self) -> &'static str {
        "Antivirus"
    }

    /// The signatures change without the settings changing; the engine's
    /// version (which names the database) is in every result instead. The
    /// address is what distinguishes one daemon from another.
    fn config(&self) -> Value {
        json!({"address": self.config.address})
    }

    fn check(&self) -> Result<(), String> {
        let address = &self.config.address;
        let timeout = Duration::from_secs(self.config.connect_timeout_secs.max(1));
        let reached = if is_tcp(address) {
            use std::net::ToSocketAddrs;
            let addr = address
                .to_socket_addrs()
                .map_err(|e| format!("clamd address {address:?}: {e}"))?
                .next()
                .ok_or_else(|| format!("clamd address {address:?} resolves to nothing"))?;
            std::net::TcpStream::connect_timeout(&addr, timeout).map(drop)
        } else {
            std::os::unix::net::UnixStream::connect(address).map(drop)
        };
        reached.map_err(|e| format!("clamd at {address} is not reachable: {e}"))
    }

    fn scan(&self, input: ScanInput) -> BoxFuture<'static, Result<ModuleOutput, ModuleError>> {
        let config = self.config.clone();
        Box::pin(async move {
            let engine = command(&config, "VERSION")
                .await
                .map_err(ModuleError::Failed)?;
            let answer = instream(&config, &input.path).await?;
            Ok(ModuleOutput::result(verdict(&answer, &engine)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_results_or_errors() {
        let clean = verdict("stream: OK", "ClamAV 1").unwrap();
        assert_eq!(clean["infected"], false);
        assert!(clean.get("detection").is_none());
        let found = verdict("stream: Win.Test.EICAR_HDB-1 FOUND", "ClamAV 1").unwrap();
        assert_eq!(found["detection"], "Win.Test.EICAR_HDB-1");
        let err = verdict("INSTREAM size limit exceeded. ERROR", "ClamAV 1").unwrap_err();
        assert!(err.to_string().contains("size limit exceeded"), "{err}");
    }

    #[test]
    fn addresses_are_sockets_or_tcp() {
        assert!(is_tcp("127.0.0.1:3310"));
        assert!(is_tcp("clamd.internal:3310"));
        assert!(!is_tcp("/run/clamav/clamd.ctl"));
        assert!(!is_tcp("./clamd:sock"));
    }
}
