//! One download: a bounded, optionally conditional GET on ehttp's thread,
//! answered once, by its own end or by its deadline, whichever comes first.
//! The deadlines of all of a source's downloads are kept by one timer thread.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bevy::log::warn;
use crossbeam_channel::RecvTimeoutError;
use ehttp::streaming::Part;

use super::RemoteError;

/// A download's result.
pub(super) enum Fetched {
    /// The whole body, and the validators that name its version.
    Body(Vec<u8>, Validators),
    /// 304: unchanged since the validators sent.
    NotModified,
    /// 404.
    NotFound,
}

/// What the server said identifies a version.
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Validators {
    fn of(response: &ehttp::PartialResponse) -> Self {
        Self {
            etag: response.headers.get("etag").map(str::to_owned),
            last_modified: response.headers.get("last-modified").map(str::to_owned),
        }
    }
}

/// What a download is answered with.
type Outcome = Result<Fetched, RemoteError>;

/// The downloads of one source: its timeout, and the timer thread that
/// ends those that outlive it.
pub(super) struct Downloads {
    timeout: Duration,
    /// Dropped with the source, which ends the timer thread.
    deadlines: crossbeam_channel::Sender<(Instant, Arc<Answer>)>,
}

impl Downloads {
    /// Starts the timer thread of the source `name`.
    pub(super) fn start(name: &str, timeout: Duration) -> Self {
        let (deadlines, due) = crossbeam_channel::unbounded();
        let spawned = std::thread::Builder::new()
            .name(format!("hotwasm deadlines {name}"))
            .spawn(move || keep_deadlines(&due));
        if let Err(error) = spawned {
            warn!("{name}://: no timer thread ({error}); relying on ehttp's own timeout");
        }
        Self { timeout, deadlines }
    }

    /// Starts a GET of `url` on ehttp's thread: at most `limit` bytes
    /// within the source's timeout, conditional on `validators` when they
    /// name a version. `progress` sees the bytes so far. The answer comes
    /// once on the returned channel.
    pub(super) fn get(
        &self,
        url: &str,
        validators: &Validators,
        limit: usize,
        progress: impl Fn(u64) + Send + 'static,
    ) -> async_channel::Receiver<Outcome> {
        let (to, answered) = async_channel::bounded(1);
        let answer = Arc::new(Answer {
            url: url.to_owned(),
            timeout: self.timeout,
            started: Instant::now(),
            to: Mutex::new(Some(to)),
        });
        // ehttp's streaming GET bounds only the gaps within a body: a server
        // that never answers would hold the download forever without this.
        if let Some(deadline) = answer.started.checked_add(self.timeout) {
            // Closed only if the timer thread could not start (logged then).
            let _ = self.deadlines.send((deadline, answer.clone()));
        }
        let download = Mutex::new(Download {
            answer,
            limit,
            progress,
            body: Vec::new(),
            validators: Validators::default(),
        });
        let request = conditional_get(url, validators, self.timeout);
        ehttp::streaming::fetch(request, move |part| {
            download
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .receive(part)
        });
        answered
    }
}

/// A GET of `url` with ehttp's own body timeout, conditional on
/// `validators` when they name a version.
fn conditional_get(url: &str, validators: &Validators, timeout: Duration) -> ehttp::Request {
    let mut request = ehttp::Request::get(url).with_timeout(Some(timeout));
    if let Some(etag) = &validators.etag {
        request = request.with_header("If-None-Match", etag);
    }
    if let Some(last_modified) = &validators.last_modified {
        request = request.with_header("If-Modified-Since", last_modified);
    }
    request
}

/// The timer thread: answers [`RemoteError::TimedOut`] for each download
/// still unanswered at its deadline, until the source is dropped. A
/// download that ended in time keeps its entry until its deadline, when
/// answering it again does nothing.
fn keep_deadlines(due: &crossbeam_channel::Receiver<(Instant, Arc<Answer>)>) {
    // By deadline, then by arrival: two downloads may share an instant.
    let mut pending = BTreeMap::<(Instant, u64), Arc<Answer>>::new();
    let mut arrivals = 0_u64;
    loop {
        let next = match pending.first_key_value() {
            Some((&(deadline, _), _)) => due.recv_deadline(deadline),
            None => due.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok((deadline, answer)) => {
                pending.insert((deadline, arrivals), answer);
                arrivals += 1;
            }
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                while let Some(entry) = pending.first_entry()
                    && entry.key().0 <= now
                {
                    let answer = entry.remove();
                    answer.give(Err(answer.timed_out()));
                }
            }
            // Nobody can wait for an answer any more.
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The one answer a download gives: the first of its own end and its
/// deadline wins, later ones are dropped.
struct Answer {
    url: String,
    timeout: Duration,
    started: Instant,
    to: Mutex<Option<async_channel::Sender<Outcome>>>,
}

impl Answer {
    fn give(&self, outcome: Outcome) {
        let to = self.lock().take();
        if let Some(to) = to {
            // The reader may have given up waiting; nothing to tell then.
            let _ = to.try_send(outcome);
        }
    }

    fn given(&self) -> bool {
        self.lock().is_none()
    }

    fn lock(&self) -> MutexGuard<'_, Option<async_channel::Sender<Outcome>>> {
        // A plain `Option` swap: a panic cannot leave it half-done.
        self.to.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Our own clock, not the text of an error, says a download timed out.
    fn late(&self) -> bool {
        self.started.elapsed() >= self.timeout
    }

    fn timed_out(&self) -> RemoteError {
        RemoteError::TimedOut {
            url: self.url.clone(),
            after: self.timeout,
        }
    }
}

/// A download under way, fed by ehttp one part at a time.
struct Download<P> {
    answer: Arc<Answer>,
    limit: usize,
    progress: P,
    body: Vec<u8>,
    validators: Validators,
}

impl<P: Fn(u64)> Download<P> {
    /// Takes one part from ehttp; breaks off once the download is answered.
    fn receive(&mut self, part: ehttp::Result<Part>) -> ControlFlow<()> {
        if self.answer.given() {
            // The deadline came first.
            return ControlFlow::Break(());
        }
        let outcome = match part {
            Err(cause) => Some(Err(self.failed(cause))),
            Ok(Part::Response(response)) => self.head(&response),
            Ok(Part::Chunk(chunk)) => self.chunk(&chunk),
        };
        match outcome {
            None => ControlFlow::Continue(()),
            Some(outcome) => {
                self.answer.give(outcome);
                ControlFlow::Break(())
            }
        }
    }

    /// ehttp's errors are only text: past the timeout it is a timeout,
    /// before it the server could not be reached.
    fn failed(&self, cause: String) -> RemoteError {
        if self.answer.late() {
            self.answer.timed_out()
        } else {
            RemoteError::Unreachable {
                url: self.answer.url.clone(),
                cause,
            }
        }
    }

    /// The status line and headers: an answer, or `None` to read the body.
    fn head(&mut self, response: &ehttp::PartialResponse) -> Option<Outcome> {
        let too_large = response
            .headers
            .get("content-length")
            .and_then(|length| length.parse::<usize>().ok())
            .is_some_and(|length| length > self.limit);
        match response.status {
            304 => Some(Ok(Fetched::NotModified)),
            404 => Some(Ok(Fetched::NotFound)),
            status if !response.ok => Some(Err(RemoteError::Status {
                url: self.answer.url.clone(),
                status,
            })),
            _ if too_large => Some(Err(self.too_large())),
            _ => {
                self.validators = Validators::of(response);
                None
            }
        }
    }

    /// A piece of the body (empty at its end): an answer, or `None` for more.
    fn chunk(&mut self, chunk: &[u8]) -> Option<Outcome> {
        if chunk.is_empty() {
            let body = std::mem::take(&mut self.body);
            return Some(Ok(Fetched::Body(body, self.validators.clone())));
        }
        self.body.extend_from_slice(chunk);
        (self.progress)(self.body.len() as u64);
        if self.body.len() > self.limit {
            Some(Err(self.too_large()))
        } else if self.answer.late() {
            Some(Err(self.answer.timed_out()))
        } else {
            None
        }
    }

    fn too_large(&self) -> RemoteError {
        RemoteError::TooLarge {
            url: self.answer.url.clone(),
            limit: self.limit,
        }
    }
}

/// A closed channel means ehttp dropped the callback without an answer.
pub(super) fn received(url: &str, result: Result<Outcome, async_channel::RecvError>) -> Outcome {
    result.unwrap_or_else(|_| {
        Err(RemoteError::Unreachable {
            url: url.to_owned(),
            cause: "the download ended without an answer".to_owned(),
        })
    })
}
