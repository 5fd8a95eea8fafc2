//! A small HTTP/1.1 file server on 127.0.0.1 for remote-module tests: GET
//! only, `ETag` from the content, `304 Not Modified` for a matching
//! `If-None-Match`, 404 for anything not put, and a request log.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Files {
    files: HashMap<String, Vec<u8>>,
    /// Paths answered with a bare status line, whatever was asked.
    statuses: HashMap<String, u16>,
    requests: Vec<String>,
}

/// A running server; dropping it (or [`TestServer::stop`]) closes the port.
pub struct TestServer {
    address: SocketAddr,
    files: Arc<Mutex<Files>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn etag(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("\"{:x}\"", hasher.finish())
}

fn answer(stream: TcpStream, files: &Mutex<Files>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut if_none_match = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(value.trim().to_owned());
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_owned();
    let (body, forced) = {
        let mut files = files.lock().unwrap();
        files.requests.push(path.clone());
        (
            files.files.get(&path).cloned(),
            files.statuses.get(&path).copied(),
        )
    };
    let mut stream = stream;
    let head = |status: &str, extra: &str, length: usize| {
        format!("HTTP/1.1 {status}\r\n{extra}Content-Length: {length}\r\nConnection: close\r\n\r\n")
    };
    if let Some(status) = forced {
        return stream.write_all(head(&format!("{status} Forced"), "", 0).as_bytes());
    }
    match body {
        None => stream.write_all(head("404 Not Found", "", 0).as_bytes()),
        Some(body) => {
            let tag = etag(&body);
            if if_none_match.as_deref() == Some(tag.as_str()) {
                stream
                    .write_all(head("304 Not Modified", &format!("ETag: {tag}\r\n"), 0).as_bytes())
            } else {
                stream.write_all(
                    head("200 OK", &format!("ETag: {tag}\r\n"), body.len()).as_bytes(),
                )?;
                stream.write_all(&body)
            }
        }
    }
}

impl TestServer {
    /// Starts serving nothing on a free loopback port.
    pub fn start() -> Self {
        Self::start_at("http://127.0.0.1:0")
    }

    /// Starts serving nothing at `url` (`http://127.0.0.1:<port>`).
    pub fn start_at(url: &str) -> Self {
        let address = url.trim_start_matches("http://");
        let listener = TcpListener::bind(address).expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let files = Arc::new(Mutex::new(Files::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (files, stop) = (files.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            // A client that hangs up early is not the test's concern.
                            let _ = answer(stream, &files);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Self {
            address,
            files,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Serves `bytes` at `/<path>` from now on.
    pub fn put(&self, path: &str, bytes: &[u8]) {
        let mut files = self.files.lock().unwrap();
        files.files.insert(path.to_owned(), bytes.to_vec());
    }

    /// Answers every request for `/<path>` with `status` and no body.
    pub fn answer_with(&self, path: &str, status: u16) {
        let mut files = self.files.lock().unwrap();
        files.statuses.insert(path.to_owned(), status);
    }

    /// Stops serving `/<path>` (404 from now on).
    pub fn remove(&self, path: &str) {
        self.files.lock().unwrap().files.remove(path);
    }

    /// How many requests asked for `/<path>`.
    pub fn requests_for(&self, path: &str) -> usize {
        let files = self.files.lock().unwrap();
        files.requests.iter().filter(|p| *p == path).count()
    }

    /// Closes the port: connections are refused from now on.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback URL nothing listens on.
pub fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

/// A loopback URL whose server accepts connections and never answers.
/// The listener thread lives until the test process ends.
pub fn stalled_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        // Keep every connection open, unanswered, until the test ends.
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept() {
            held.push(stream);
        }
    });
    url
}
