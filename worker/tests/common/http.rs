//! A small HTTP/1.1 server for tests of the web-API modules: it records
//! each request (method, path, headers, body; plain or chunked) and answers
//! with what the test's handler returns, as the real service documents.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// A status, extra headers and a JSON body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Answer + Send + Sync;

/// Every request the server received, in order.
pub type Seen = Arc<Mutex<Vec<Request>>>;

async fn read_body(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    headers: &BTreeMap<String, String>,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0u8; n + 2];
            reader.read_exact(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = headers.get("content-length").and_then(|v| v.parse().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body).await?;
    }
    Ok(body)
}

/// Starts a server on a free loopback port; returns `http://ADDR` and
/// the record of requests.
pub async fn serve(handler: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let handler: Arc<Handler> = Arc::new(handler);
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (handler, record) = (Arc::clone(&handler), Arc::clone(&record));
            tokio::spawn(async move {
                let (rx, mut tx) = stream.into_split();
                let mut reader = BufReader::new(rx);
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let path = parts.next().unwrap_or("").to_owned();
                let mut headers = BTreeMap::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let Ok(body) = read_body(&mut reader, &headers).await else {
                    return;
                };
                let request = Request {
                    method,
                    path,
                    headers,
                    body,
                };
                let answer = handler(&request);
                record.lock().unwrap().push(request);
                let body = answer.body.to_string();
                let mut head = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n",
                    answer.status,
                    body.len()
                );
                for (k, v) in answer.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = tx.write_all(head.as_bytes()).await;
                let _ = tx.write_all(body.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}
