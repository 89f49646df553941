//! A minimal HTTP/1.1 GET over a fresh loopback connection, enough to ask
//! a processor for `/api/symbols/{SYMBOL}` (the bench has no HTTP client
//! dependency). Reads to the end of the response (`Connection: close`) and
//! undoes chunked transfer encoding.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `addr`: the status and the body, or why not.
pub(crate) async fn get(
    addr: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_response(&buf)
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("GET {path} on {addr}: no answer within {timeout:?}"))?
}

/// Status and body of a whole response.
pub(crate) fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("response without a header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("response without a status")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("truncated chunk size")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("chunk size: {e}"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = after.get(..size).ok_or("truncated chunk")?;
        out.push_str(chunk);
        rest = after.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// Self-check: a plain and a chunked response.
pub(crate) fn self_check() -> Result<(), String> {
    let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n{\"last_seq\":7}";
    let chunked =
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
    let a = parse_response(plain)?;
    let b = parse_response(chunked)?;
    if a != (200, "{\"last_seq\":7}".to_string()) || b != (404, "{\"a\":1}".to_string()) {
        return Err(format!("parsed {a:?} and {b:?}"));
    }
    Ok(())
}
