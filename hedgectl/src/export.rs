//! `hedgectl export --listen ADDR`: the namespace's counters and gauges in the Prometheus text
//! format over a tiny HTTP/1.1 server (std::net only).
//!
//! It binds only the address it is given, serves one connection at a time (a scraper every few
//! seconds), takes a fresh read-only [`crate::metrics::Snapshot`] per scrape and never touches
//! the engine's hot path: reading counters is a handful of relaxed atomic loads in another
//! process's memory. Run it on a housekeeping core.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use anyhow::Context as _;

/// Serves `GET /metrics` (and `GET /` with a pointer to it) until `stop()` returns true or
/// `max_requests` requests were answered. `render` produces the body of each scrape.
///
/// # Errors
/// Binding fails (address in use, not permitted).
pub fn serve(
    listen: &str,
    max_requests: Option<u64>,
    mut render: impl FnMut() -> Result<String, String>,
    stop: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen} (address in use or not allowed?)"))?;
    let local = listener.local_addr()?;
    eprintln!("hedgectl export: serving Prometheus metrics on http://{local}/metrics");
    listener.set_nonblocking(true)?;
    let mut served = 0u64;
    while !stop() {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = handle(stream, &mut render) {
                    eprintln!("hedgectl export: request failed: {e}");
                }
                served += 1;
                if max_requests.is_some_and(|m| served >= m) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context("accept failed"),
        }
    }
    Ok(())
}

fn handle(
    stream: TcpStream,
    render: &mut impl FnMut() -> Result<String, String>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers (we need none of them).
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let (status, ctype, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET" | "HEAD", "/metrics") => match render() {
            Ok(b) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", b),
            Err(e) => (
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                format!("namespace not readable: {e}\n"),
            ),
        },
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "hedgectl export: metrics at /metrics\n".to_string(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn serves_metrics_and_404_over_loopback() {
        // Find a free port, then serve two requests on it.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = format!("127.0.0.1:{port}");
        let a2 = addr.clone();
        let t = std::thread::spawn(move || {
            serve(&a2, Some(2), || Ok("hedge_x 1\n".to_string()), || false).unwrap()
        });
        let get = |path: &str| {
            for _ in 0..100 {
                if let Ok(mut s) = TcpStream::connect(&addr) {
                    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    let mut r = String::new();
                    s.read_to_string(&mut r).unwrap();
                    return r;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("server did not come up");
        };
        let r = get("/metrics");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.ends_with("hedge_x 1\n"), "{r}");
        assert!(get("/nope").starts_with("HTTP/1.1 404"));
        t.join().unwrap();
    }
}
