//! One live instance of a script module: its store, its exports, and what
//! it produced during a call, returned to the runtime to publish.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bevy::prelude::*;
use hotwasm_events::EventHeader;
use wasmtime::Store;

use crate::capabilities::Grant;
use crate::engine::{EPOCH_TICK, WasmEngine};
use crate::host::{
    Batch, CallQuota, DetailsStamp, GameTypes, GuestFrame, GuestLine, GuestOutput, HostState,
    InstanceDetails, InstanceIdentity, Message, Request, RequestError, ScriptWorld, ScriptWorldPre,
    TaskDue, Watches,
};
use crate::messages::{FailureStage, ScriptRef};
use crate::sandbox::{FaultKind, GuestLimits, Sandbox};
use crate::stamps::EventStamp;

/// The game's [`World`] for the length of a frame's script work, boxed so
/// that lending it to one instance's host imports for a call moves a
/// pointer into the store and back: the `ecs` imports get `&mut World` with
/// no `unsafe`, and no call copies the world. It moves into the box once a
/// frame, an empty world standing in at home, and home again on drop (a
/// panic included). Derefs to the game's world between calls.
pub(crate) struct WorldLoan<'a> {
    home: &'a mut World,
    game: Option<Box<World>>,
    /// The box, kept between frames with the stand-in in it.
    spare: &'a mut Option<Box<World>>,
}

impl<'a> WorldLoan<'a> {
    pub fn new(home: &'a mut World, spare: &'a mut Option<Box<World>>) -> Self {
        let mut game = spare.take().unwrap_or_default();
        std::mem::swap(&mut *game, home);
        Self {
            home,
            game: Some(game),
            spare,
        }
    }

    fn lend<R>(
        &mut self,
        store: &mut Store<HostState>,
        call: impl FnOnce(&mut Store<HostState>) -> R,
    ) -> R {
        store.data_mut().lend_world(self.game.take());
        let result = call(store);
        self.game = store.data_mut().take_world();
        result
    }
}

impl std::ops::Deref for WorldLoan<'_> {
    type Target = World;

    fn deref(&self) -> &World {
        self.game.as_deref().expect(LENT_ONLY_DURING_CALLS)
    }
}

impl std::ops::DerefMut for WorldLoan<'_> {
    fn deref_mut(&mut self) -> &mut World {
        self.game.as_deref_mut().expect(LENT_ONLY_DURING_CALLS)
    }
}

impl Drop for WorldLoan<'_> {
    fn drop(&mut self) {
        if let Some(mut game) = self.game.take() {
            std::mem::swap(&mut *game, self.home);
            *self.spare = Some(game);
        }
    }
}

const LENT_ONLY_DURING_CALLS: &str =
    "the world is only away during a call, and host imports only borrow it";

/// A duration in whole nanoseconds, as the WIT carries times (saturating
/// after 584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Appends `part` to a batch's `bytes` and returns its range (saturating:
/// a batch past 4 GiB cannot be lowered into a guest anyway).
fn append(bytes: &mut Vec<u8>, part: &[u8]) -> (u32, u32) {
    let start = bytes.len();
    bytes.extend_from_slice(part);
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (to_u32(start), to_u32(part.len()))
}

/// Messages waiting for one instance's next batch, packed the way the
/// batch carries them: fixed-size headers, and the topics and payloads back
/// to back in one buffer. A topic the same as the previous message's is not
/// written again: the header points at the one before.
#[derive(Default)]
pub(crate) struct PendingMessages {
    headers: Vec<Message>,
    bytes: Vec<u8>,
}

impl PendingMessages {
    pub fn push(&mut self, topic: &str, payload: &[u8], sender: Option<u64>) {
        let repeated = self.headers.last().and_then(|last| {
            let start = last.topic_start as usize;
            let previous = self.bytes.get(start..start + last.topic_len as usize)?;
            (previous == topic.as_bytes()).then_some((last.topic_start, last.topic_len))
        });
        let (topic_start, topic_len) =
            repeated.unwrap_or_else(|| append(&mut self.bytes, topic.as_bytes()));
        let (payload_start, payload_len) = append(&mut self.bytes, payload);
        self.headers.push(Message {
            topic_start,
            topic_len,
            payload_start,
            payload_len,
            sender,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    pub fn len(&self) -> usize {
        self.headers.len()
    }
}

/// Watched changes waiting for one instance's next batch, packed the way
/// the batch carries them: fixed-size headers ([`EventHeader`]) in one
/// buffer, and the subjects and data back to back in another.
#[derive(Default)]
pub(crate) struct PendingEvents {
    headers: Vec<u8>,
    bytes: Vec<u8>,
}

impl PendingEvents {
    pub fn push(
        &mut self,
        watch: u64,
        stamp: &EventStamp,
        kind: hotwasm_events::ChangeKind,
        subject: &str,
        data: &[u8],
    ) {
        let (subject_start, subject_len) = append(&mut self.bytes, subject.as_bytes());
        let (data_start, data_len) = append(&mut self.bytes, data);
        let header = EventHeader {
            watch,
            id: stamp.id,
            kind,
            time: nanos(stamp.time.duration_since(UNIX_EPOCH).unwrap_or_default()),
            virtual_time: nanos(stamp.virtual_time),
            subject_start,
            subject_len,
            data_start,
            data_len,
        };
        header.write(&mut self.headers);
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    pub fn len(&self) -> usize {
        self.headers.len() / EventHeader::BYTES
    }

    /// Keeps the oldest events, at most `max_events` of them and
    /// `max_bytes` of subjects and data; returns how many it dropped.
    pub fn keep_first(&mut self, max_events: usize, max_bytes: usize) -> usize {
        let fits = |event: &EventHeader| {
            (event.data_start as usize).saturating_add(event.data_len as usize) <= max_bytes
        };
        let held = self.len();
        // Every event's data ends within `bytes`: when both are within
        // their bounds, as in most frames, no header needs reading.
        if held <= max_events && self.bytes.len() <= max_bytes {
            return 0;
        }
        let kept = (EventHeader::all(&self.headers))
            .take(max_events)
            .take_while(fits)
            .count();
        let first_dropped = self.headers.get(kept * EventHeader::BYTES..);
        if let Some(first_dropped) = first_dropped.and_then(EventHeader::read) {
            self.bytes.truncate(first_dropped.subject_start as usize);
            self.headers.truncate(kept * EventHeader::BYTES);
        }
        held - kept
    }
}

/// Requests for one `handle-requests` call, packed as the call carries
/// them: fixed-size headers, the topics and payloads back to back.
#[derive(Default)]
pub(crate) struct PendingRequests {
    headers: Vec<Request>,
    bytes: Vec<u8>,
}

impl PendingRequests {
    pub fn push(&mut self, topic: &str, payload: &[u8]) {
        let (topic_start, topic_len) = append(&mut self.bytes, topic.as_bytes());
        let (payload_start, payload_len) = append(&mut self.bytes, payload);
        self.headers.push(Request {
            topic_start,
            topic_len,
            payload_start,
            payload_len,
        });
    }

    pub fn len(&self) -> usize {
        self.headers.len()
    }
}

/// What the guest answered to one request.
pub(crate) type GuestAnswer = Result<Vec<u8>, RequestError>;

/// The least time between two warnings about one instance's refused host
/// requests.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(5);

/// A running instance: its store, its exports, its output.
pub(crate) struct LiveInstance {
    store: Store<HostState>,
    script: ScriptWorld,
    output: GuestOutput,
    script_ref: ScriptRef,
    meter: Meter,
    /// What the calls since the last [`LiveInstance::take_cost`] used.
    cost: CallCost,
    /// Refused host requests not yet warned about, and when the last
    /// warning was: at most one every [`REFUSAL_WARNING_INTERVAL`].
    unreported_refusals: u64,
    last_refusal_warning: Option<Instant>,
    /// Why the last change the guest returned to its own components was
    /// refused, for that warning.
    last_refused_write: Option<String>,
    /// The newest call refused for a capability, as the guest was told,
    /// for that warning.
    last_denied: Option<String>,
    /// Reused between frames so a batch allocates nothing when it is small.
    due_tasks: Vec<TaskDue>,
    /// What [`LiveInstance::changed_details`] last reported, if anything.
    reported: Option<DetailsStamp>,
}

/// Epoch ticks for "no CPU limit": wasmtime adds the deadline to the
/// current epoch, so `u64::MAX` would overflow (a panic in a debug build, a
/// deadline in the past in a release one); half of it is 292 million years
/// of millisecond ticks.
const NO_DEADLINE: u64 = u64::MAX / 2;

/// The budget each call gets.
#[derive(Clone, Copy)]
struct Meter {
    /// Epoch ticks per call, with epoch interruption on.
    epoch_ticks: Option<u64>,
    /// Fuel per call, with fuel on.
    fuel: Option<u64>,
}

impl Meter {
    fn new(sandbox: &Sandbox, limits: &GuestLimits) -> Self {
        let tick_ms = EPOCH_TICK.as_millis() as u64;
        Self {
            epoch_ticks: sandbox.epoch_interruption.then(|| {
                limits
                    .cpu_budget_ms
                    .map_or(NO_DEADLINE, |ms| ms.div_ceil(tick_ms).min(NO_DEADLINE))
            }),
            fuel: sandbox
                .fuel
                .then(|| limits.fuel_per_call.unwrap_or(u64::MAX)),
        }
    }

    fn arm(&self, store: &mut Store<HostState>) {
        if let Some(ticks) = self.epoch_ticks {
            store.set_epoch_deadline(ticks);
        }
        if let Some(fuel) = self.fuel {
            // Only fails with fuel off, which `self.fuel` rules out.
            let _ = store.set_fuel(fuel);
        }
    }
}

/// What guest calls used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CallCost {
    pub calls: u64,
    pub time: Duration,
    pub fuel: u64,
    /// Host requests refused over a quota, log lines dropped included.
    pub refused: u64,
    /// Host calls refused for a capability the module was not granted.
    pub denied: u64,
    /// Calls that faulted.
    pub faults: u64,
    /// Calls put off to a later frame, the frame's budget spent.
    pub postponed: u64,
}

/// A guest call that failed: why, and the fault when the guest did not
/// return (a trap, an interrupt, a limit) rather than return an error.
#[derive(Clone, Debug)]
pub(crate) struct CallError {
    pub cause: String,
    pub fault: Option<FaultKind>,
}

impl CallError {
    /// The guest returned an error of its own.
    fn refused(message: String) -> Self {
        Self {
            cause: format!("the guest returned an error: {message}"),
            fault: None,
        }
    }
}

impl LiveInstance {
    pub fn instantiate(
        pre: &ScriptWorldPre<HostState>,
        engine: &WasmEngine,
        limits: &GuestLimits,
        grant: Arc<Grant>,
        script_ref: ScriptRef,
        now: u64,
        game: GameTypes,
    ) -> Result<Self, CallError> {
        let quotas = engine.sandbox().host;
        let output = GuestOutput::with_max_lines(quotas.log_lines);
        let identity = InstanceIdentity {
            entity: script_ref.entity,
            generation: script_ref.generation,
            module_path: script_ref.path.clone(),
        };
        let mut state = HostState::new(
            identity,
            output.clone(),
            game,
            limits,
            CallQuota::new(quotas),
            grant,
        );
        state.set_now(now);
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|state| state.limiter());
        let meter = Meter::new(engine.sandbox(), limits);
        meter.arm(&mut store);
        let script = pre.instantiate(&mut store).map_err(|error| {
            let limit_hit = store.data_mut().take_limit_hit();
            fault(&error, limit_hit)
        })?;
        Ok(Self {
            store,
            script,
            output,
            script_ref,
            meter,
            cost: CallCost::default(),
            unreported_refusals: 0,
            last_refusal_warning: None,
            last_refused_write: None,
            last_denied: None,
            reported: None,
            due_tasks: Vec::new(),
        })
    }

    /// Which script and generation this instance is.
    pub fn script_ref(&self) -> &ScriptRef {
        &self.script_ref
    }

    /// What the calls since the last time used.
    pub fn take_cost(&mut self) -> CallCost {
        std::mem::take(&mut self.cost)
    }

    /// One metered call into the guest: armed with the budget, timed, its
    /// fuel counted, the world lent, a failure classified.
    fn call<R>(
        &mut self,
        loan: &mut WorldLoan,
        call: impl FnOnce(&ScriptWorld, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.meter.arm(&mut self.store);
        let started = Instant::now();
        let script = &self.script;
        let result = loan.lend(&mut self.store, |store| call(script, store));
        self.cost.calls += 1;
        self.cost.time += started.elapsed();
        if let Some(fuel) = self.meter.fuel {
            self.cost.fuel += fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
        }
        let state = self.store.data_mut();
        let refused = state.start_call();
        self.cost.refused += refused;
        self.unreported_refusals += refused;
        let (denied, last_denied) = state.take_denied();
        self.cost.denied += denied;
        self.unreported_refusals += denied;
        if last_denied.is_some() {
            self.last_denied = last_denied;
        }
        let limit_hit = state.take_limit_hit();
        result.map_err(|error| fault(&error, limit_hit))
    }

    pub fn save_state(&mut self, loan: &mut WorldLoan) -> Result<Option<Vec<u8>>, CallError> {
        self.call(loan, |script, store| script.call_save_state(store))
    }

    /// `restore-state` (when there is state), then `init`.
    pub fn start(
        &mut self,
        loan: &mut WorldLoan,
        state: Option<Vec<u8>>,
    ) -> Result<(), (FailureStage, CallError)> {
        if let Some(state) = state {
            self.call(loan, |script, store| {
                script.call_restore_state(store, &state)
            })
            .and_then(|returned| returned.map_err(CallError::refused))
            .map_err(|error| (FailureStage::Restore, error))?;
        }
        self.call(loan, |script, store| script.call_init(store))
            .and_then(|returned| returned.map_err(CallError::refused))
            .map_err(|error| (FailureStage::Init, error))
    }

    /// Asks the guest every request in one `handle-requests` call: one
    /// answer per request, in order. Answers the guest left out are its
    /// error, naming the count.
    pub fn handle_requests(
        &mut self,
        loan: &mut WorldLoan,
        now: u64,
        requests: &PendingRequests,
    ) -> Result<Vec<GuestAnswer>, CallError> {
        self.store.data_mut().set_now(now);
        let mut answers = self.call(loan, |script, store| {
            script.call_handle_requests(store, now, &requests.headers, &requests.bytes)
        })?;
        let asked = requests.len();
        if answers.len() != asked {
            let wrong = format!("it returned {} answers to {asked} requests", answers.len());
            answers.resize_with(asked, || Err(RequestError::Failed(wrong.clone())));
        }
        Ok(answers)
    }

    /// Whether the guest said it answers requests on `topic`.
    pub fn answers(&self, topic: &str) -> bool {
        self.store.data().answers(topic)
    }

    /// Whether its capabilities let it answer requests on `topic`.
    pub fn may_answer(&self, topic: &str) -> bool {
        self.store.data().may_answer(topic)
    }

    pub fn watches(&self) -> &Watches {
        self.store.data().watches()
    }

    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.store.data().is_subscribed(topic)
    }

    /// Whether `handle-batch` has anything to do at `now` besides messages
    /// and events: a task due, or the frame (when `frame` is given: the game
    /// is not paused) for a guest that asked for every frame.
    pub fn wants_call(&self, now: u64, frame: Option<&GuestFrame>) -> bool {
        let state = self.store.data();
        (state.every_frame() && frame.is_some()) || state.has_due_tasks(now)
    }

    /// Hands the instance its due tasks, `messages`, `events` and, if it
    /// asked for every frame, the `frame`, in one call.
    pub fn handle_batch(
        &mut self,
        loan: &mut WorldLoan,
        now: u64,
        messages: PendingMessages,
        events: PendingEvents,
        frame: Option<GuestFrame>,
    ) -> Result<(), CallError> {
        self.store.data_mut().set_now(now);
        let frame = frame.filter(|_| self.store.data().every_frame());
        let mut tasks = std::mem::take(&mut self.due_tasks);
        self.store.data_mut().take_due_tasks(now, &mut tasks);
        let only_the_frame = tasks.is_empty() && messages.is_empty() && events.is_empty();
        let refused = match frame {
            Some(mut frame) if only_the_frame => {
                self.due_tasks = tasks;
                self.call(loan, |script, store| {
                    frame.components = store.data_mut().read_prefetched();
                    let changed = script.call_handle_frame(&mut *store, now, &frame)?;
                    Ok(store.data_mut().write_prefetched(changed))
                })?
            }
            frame => {
                let mut batch = Batch {
                    now,
                    tasks,
                    messages: messages.headers,
                    message_bytes: messages.bytes,
                    event_headers: events.headers,
                    event_bytes: events.bytes,
                    frame,
                };
                let result = self.call(loan, |script, store| {
                    if let Some(frame) = &mut batch.frame {
                        frame.components = store.data_mut().read_prefetched();
                    }
                    let changed = script.call_handle_batch(&mut *store, &batch)?;
                    Ok(store.data_mut().write_prefetched(changed))
                });
                self.due_tasks = batch.tasks;
                self.due_tasks.clear();
                result?
            }
        };
        if let Some(last) = refused.last() {
            self.cost.refused += refused.len() as u64;
            self.unreported_refusals += refused.len() as u64;
            self.last_refused_write = Some(last.clone());
        }
        Ok(())
    }

    /// The instance's tasks, subscriptions, watches and memory, when they
    /// changed since the last time they were asked for (or never were).
    pub fn changed_details(&mut self) -> Option<InstanceDetails> {
        let state = self.store.data();
        let stamp = state.details_stamp();
        if self.reported == Some(stamp) {
            return None;
        }
        self.reported = Some(stamp);
        Some(state.details())
    }

    /// What the guest logged and sent since the last time, for the runtime
    /// to publish; warns (at most every [`REFUSAL_WARNING_INTERVAL`]) about
    /// host requests refused over the quotas.
    pub fn take_output(&mut self) -> Produced {
        let dropped = self.output.take_dropped();
        self.cost.refused += dropped;
        self.unreported_refusals += dropped;
        if self.unreported_refusals > 0
            && self
                .last_refusal_warning
                .is_none_or(|last| last.elapsed() >= REFUSAL_WARNING_INTERVAL)
        {
            let last_write = self
                .last_refused_write
                .take()
                .map(|cause| format!("; the last change to its own components refused: {cause}"))
                .unwrap_or_default();
            let last_denied = (self.last_denied.take())
                .map(|denied| format!("; the last call beyond its capabilities: {denied}"))
                .unwrap_or_default();
            warn!(
                "{}: refused {} host requests (log lines, messages, key-value writes, spawns or \
                 bytes over its per-call quotas, changes to its own components, or calls beyond \
                 its capabilities){last_write}{last_denied}",
                self.script_ref, self.unreported_refusals
            );
            self.unreported_refusals = 0;
            self.last_refusal_warning = Some(Instant::now());
        }
        Produced {
            lines: self.output.take_lines(),
            sent: self.store.data_mut().take_sent(),
        }
    }
}

/// What a guest produced during its calls: log lines and sent messages
/// (topic, payload), in order.
#[derive(Default)]
pub(crate) struct Produced {
    pub lines: Vec<GuestLine>,
    pub sent: Vec<(String, Vec<u8>)>,
}

/// A call that did not return, classified.
fn fault(error: &wasmtime::Error, limit_hit: bool) -> CallError {
    let kind = FaultKind::of(error, limit_hit);
    let cause = match kind {
        FaultKind::Trap { .. } => format!("trapped: {error:#}"),
        _ => format!("{kind}: {error:#}"),
    };
    CallError {
        cause,
        fault: Some(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_events_keep_the_oldest_within_both_bounds() {
        let mut events = PendingEvents::default();
        for id in 0..5 {
            let stamp = EventStamp {
                id,
                ..EventStamp::UNPUBLISHED
            };
            events.push(
                1,
                &stamp,
                hotwasm_events::ChangeKind::KvSet,
                "key",
                b"value",
            );
        }
        assert_eq!(events.keep_first(10, 1000), 0, "within both: all kept");
        assert_eq!(events.keep_first(4, 1000), 1, "one over the count");
        // Each event is 8 bytes: "key" then "value".
        assert_eq!(events.keep_first(4, 20), 2, "the third ends past 20 bytes");
        assert_eq!(events.len(), 2);
        assert_eq!(events.bytes.len(), 16, "the dropped ones' bytes go too");
        assert_eq!(
            (EventHeader::all(&events.headers))
                .map(|event| event.id)
                .collect::<Vec<_>>(),
            [0, 1],
            "the oldest stay"
        );
    }
}
