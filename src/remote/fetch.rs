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
    /// The response's validators. A `Last-Modified` is kept only when it
    /// is strong: at least a second before the response's `Date` (RFC
    /// 9110, 8.8.2.2). Within the same second the file could change again
    /// with the same time, and `If-Modified-Since` would hide that change
    /// for ever; without it, polls compare content.
    fn of(response: &ehttp::PartialResponse) -> Self {
        let header = |name| response.headers.get(name);
        let strong = match (
            header("last-modified").and_then(http_date),
            header("date").and_then(http_date),
        ) {
            (Some(modified), Some(date)) => date > modified,
            _ => false,
        };
        Self {
            etag: header("etag").map(str::to_owned),
            last_modified: header("last-modified")
                .filter(|_| strong)
                .map(str::to_owned),
        }
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, the form RFC 9110 has
/// servers send) as seconds since 1970; `None` for anything else.
fn http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|name| name == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut clock = time.split(':').map(|part| part.parse::<i64>().ok());
    let (hours, minutes, seconds) = (clock.next()??, clock.next()??, clock.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hours * 3600 + minutes * 60 + seconds)
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

#[cfg(test)]
mod tests {
    use super::{Validators, http_date};

    fn response(headers: &[(&str, &str)]) -> ehttp::PartialResponse {
        ehttp::PartialResponse {
            url: "http://127.0.0.1/m.wasm".to_owned(),
            ok: true,
            status: 200,
            status_text: "OK".to_owned(),
            headers: ehttp::Headers::new(headers),
        }
    }

    #[test]
    fn a_last_modified_within_a_second_of_the_date_is_not_used() {
        let modified = "Thu, 03 Dec 2026 15:45:17 GMT";
        let same_second = response(&[("last-modified", modified), ("date", modified)]);
        assert_eq!(Validators::of(&same_second).last_modified, None);
        let later = [
            ("last-modified", modified),
            ("date", "Thu, 03 Dec 2026 15:45:18 GMT"),
        ];
        assert_eq!(
            Validators::of(&response(&later)).last_modified.as_deref(),
            Some(modified)
        );
        let no_date = response(&[("last-modified", modified), ("etag", "\"v1\"")]);
        let validators = Validators::of(&no_date);
        assert_eq!(validators.last_modified, None, "cannot tell: weak");
        assert_eq!(validators.etag.as_deref(), Some("\"v1\""));
    }

    #[test]
    fn http_dates_read_as_seconds_since_1970() {
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            http_date("Thu, 03 Dec 2026 15:45:17 GMT"),
            Some(1_796_312_717)
        );
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(http_date("yesterday"), None);
    }
}
