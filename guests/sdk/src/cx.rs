//! A script's context: the table from task, subscription and watch ids to
//! the script's own closures, and the dispatch of a frame's batch through it.
//!
//! Closures take the script's own type (`&mut S`) and the context, so a
//! closure of the wrong type does not compile: no run-time downcast.

use std::any::type_name;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotwasm_events::{ChangeKind, CloudEvent, EventHeader, Source};

use crate::bindings::hotwasm::script::log::{Level, log};
use crate::bindings::hotwasm::script::types::{Batch, Request, RequestError};
use crate::bindings::hotwasm::script::watch::ComponentChanges;
use crate::bindings::hotwasm::script::{messaging, scheduler, watch};
use crate::ecs::{Component, QueryData, Resource};
use crate::encoding;
use crate::game::{self, GameMessage};
use crate::{Entity, Error, Script, own};

/// A scheduled task, to [`Cx::cancel`] it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(pub u64);

/// A watch, to [`Cx::unwatch`] it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WatchId(pub u64);

/// What a repeating task's closure learns about its tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// The task.
    pub id: TaskId,
    /// Ticks that fell inside this frame before this one and were skipped:
    /// a repeating task runs at most once per frame.
    pub missed: u32,
}

/// The frame [`Script::update`] runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Virtual time since the previous frame.
    pub delta: Duration,
    /// Virtual time since the game started.
    pub elapsed: Duration,
    /// Bevy's frame count.
    pub number: u64,
}

impl Frame {
    /// [`Frame::delta`] in seconds, for `speed * dt` arithmetic.
    pub fn delta_secs(&self) -> f32 {
        self.delta.as_secs_f32()
    }
}

/// A message delivered to this instance, borrowed from the frame's batch.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The topic it was sent on.
    pub topic: &'a str,
    /// Its bytes; the format is up to the sender and the receiver.
    pub payload: &'a [u8],
    /// The entity of the instance that sent it (`Entity::from_bits`), or
    /// `None` when the game sent it.
    pub sender: Option<u64>,
}

/// A change one of this instance's watches matched: a CloudEvents 1.0
/// event, the same one the game's `KvChanged` and `WatchedChange` messages
/// describe ([`Event::cloud_event`]).
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// CloudEvents `id`: unique across sources, runs and processes (each
    /// run starts at a random number), counting up within a run.
    pub id: u64,
    /// CloudEvents `source`, e.g. `/kv/scores`.
    pub source: &'a str,
    /// What happened.
    pub kind: ChangeKind,
    /// CloudEvents `subject`: the key, or the entity (bits in decimal).
    pub subject: &'a str,
    /// CloudEvents `time`: the wall clock of the frame that published the
    /// change.
    pub time: SystemTime,
    /// The game's virtual time of that frame (the extension attribute
    /// `virtualtime`): the clock tasks run by.
    pub virtual_time: Duration,
    /// The new value (empty for a delete or a removal).
    pub data: &'a [u8],
}

impl Event<'_> {
    /// CloudEvents `type`, e.g. `dev.hotwasm.kv.set`.
    pub fn event_type(&self) -> &'static str {
        self.kind.event_type()
    }

    /// CloudEvents `datacontenttype`; none for an event without data (a
    /// delete or a removal).
    pub fn content_type(&self) -> Option<&'static str> {
        self.kind.content_type()
    }

    /// The event as a [`CloudEvent`]: `to_json()` writes its CloudEvents
    /// JSON form.
    pub fn cloud_event(&self) -> CloudEvent<'_> {
        CloudEvent {
            id: self.id,
            source: self.source.into(),
            kind: self.kind,
            subject: self.subject.into(),
            time: self.time,
            virtual_time: self.virtual_time,
            data: self.data,
        }
    }

    /// The entity a component event is about.
    pub fn entity(&self) -> Option<Entity> {
        self.subject.parse().ok().map(Entity::from_bits)
    }

    /// The data as a `T`: JSON for component and resource events.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        crate::ecs::from_json(self.data)
    }
}

/// What a watch covers; hand it to [`Cx::watch`].
///
/// ```ignore
/// cx.watch(Watch::key("tuning", "speed").except_own(), |me: &mut Car, cx, event| { .. })?;
/// cx.watch(Watch::prefix("scores", "player/"), ..)?;
/// cx.watch(Watch::component::<Health>(ComponentChanges::ADDED), ..)?;
/// cx.watch(Watch::resource::<Weather>(), ..)?;
/// ```
#[derive(Clone, Debug)]
pub struct Watch {
    target: Target,
}

#[derive(Clone, Debug)]
enum Target {
    Keys {
        bucket: String,
        key: String,
        prefix: bool,
        except_own: bool,
    },
    Component {
        type_path: String,
        changes: ComponentChanges,
    },
    Resource {
        type_path: String,
    },
}

impl Watch {
    /// One key of a bucket: every set and delete, by anyone (a game
    /// system, a guest, this one included, or a person editing its file).
    pub fn key(bucket: &str, key: &str) -> Self {
        Self::keys(bucket, key, false)
    }

    /// Every key of a bucket starting with `prefix` (`""`: every key).
    pub fn prefix(bucket: &str, prefix: &str) -> Self {
        Self::keys(bucket, prefix, true)
    }

    fn keys(bucket: &str, key: &str, prefix: bool) -> Self {
        Self {
            target: Target::Keys {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                prefix,
                except_own: false,
            },
        }
    }

    /// Leaves out this instance's own key-value writes: for a script that
    /// writes a key and reacts to others writing it. No effect on
    /// component and resource watches (their changes carry no writer).
    pub fn except_own(mut self) -> Self {
        if let Target::Keys { except_own, .. } = &mut self.target {
            *except_own = true;
        }
        self
    }

    /// The `changes` of the component `C`; the event's subject is the
    /// entity, its data the component's JSON (none for a removal).
    pub fn component<C: Component>(changes: ComponentChanges) -> Self {
        Self::component_path(C::TYPE_PATH, changes)
    }

    /// Like [`Watch::component`], by type path.
    pub fn component_path(type_path: &str, changes: ComponentChanges) -> Self {
        Self {
            target: Target::Component {
                type_path: type_path.to_owned(),
                changes,
            },
        }
    }

    /// The resource `R`: once in every frame it was inserted or changed.
    pub fn resource<R: Resource>() -> Self {
        Self::resource_path(R::TYPE_PATH)
    }

    /// Like [`Watch::resource`], by type path.
    pub fn resource_path(type_path: &str) -> Self {
        Self {
            target: Target::Resource {
                type_path: type_path.to_owned(),
            },
        }
    }

    /// Registers the watch with the host; returns its id and source.
    fn register(&self) -> Result<(u64, String), Error> {
        Ok(match &self.target {
            Target::Keys {
                bucket,
                key,
                prefix: false,
                except_own,
            } => (
                watch::watch_key(bucket, key, *except_own)?,
                Source::Bucket(bucket).to_string(),
            ),
            Target::Keys {
                bucket,
                key,
                prefix: true,
                except_own,
            } => (
                watch::watch_prefix(bucket, key, *except_own)?,
                Source::Bucket(bucket).to_string(),
            ),
            Target::Component { type_path, changes } => (
                watch::watch_component(type_path, *changes)?,
                Source::Component(type_path).to_string(),
            ),
            Target::Resource { type_path } => (
                watch::watch_resource(type_path)?,
                Source::Resource(type_path).to_string(),
            ),
        })
    }
}

type Shared<F> = Rc<RefCell<F>>;
type OnceTask<S> = Box<dyn FnOnce(&mut S, &mut Cx<S>) -> Result<(), Error>>;
type RepeatingTask<S> = dyn FnMut(&mut S, &mut Cx<S>, Tick) -> Result<(), Error>;
type MessageHandler<S> = dyn for<'m> FnMut(&mut S, &mut Cx<S>, &Message<'m>) -> Result<(), Error>;
type WatchHandler<S> = dyn for<'e> FnMut(&mut S, &mut Cx<S>, &Event<'e>) -> Result<(), Error>;
type RequestHandler<S> = dyn FnMut(&mut S, &mut Cx<S>, &[u8]) -> Result<Vec<u8>, Error>;

/// What a handler is called in the line logged when it fails: its
/// function's path (`mischief::tick`), or, for a closure, where it was
/// registered (`the closure at guests/echo/src/lib.rs:31`): a closure's type
/// name (`<echo::Echo as hotwasm_sdk::Script>::init::{{closure}}`) says
/// little.
#[derive(Clone, Copy)]
struct HandlerName {
    function: &'static str,
    registered_at: &'static Location<'static>,
}

impl HandlerName {
    fn of<F>(registered_at: &'static Location<'static>) -> Self {
        Self {
            function: type_name::<F>(),
            registered_at,
        }
    }
}

impl fmt::Display for HandlerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.function.contains("{{closure}}") {
            let at = self.registered_at;
            write!(f, "the closure at {}:{}", at.file(), at.line())
        } else {
            f.write_str(self.function)
        }
    }
}

/// A handler and the name it is logged under when it fails.
struct Named<F: ?Sized> {
    name: HandlerName,
    handler: Shared<F>,
}

impl<F: ?Sized> Clone for Named<F> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            handler: self.handler.clone(),
        }
    }
}

enum Task<S> {
    Once(HandlerName, OnceTask<S>),
    Repeating(Named<RepeatingTask<S>>),
}

/// A script's context: what it registered (tasks, subscriptions, watches)
/// and the way to register more. [`Script::init`], [`Script::update`] and
/// every handler get it.
///
/// Closures take the script's own type, checked when the guest compiles:
///
/// ```no_run
/// # use hotwasm_sdk::{Cx, Error};
/// #[derive(Default)]
/// struct Mine { pings: u32 }
///
/// fn register(cx: &mut Cx<Mine>) -> Result<(), Error> {
///     cx.on_message("ping", |me: &mut Mine, _, _| {
///         me.pings += 1;
///         Ok(())
///     })
/// }
/// ```
///
/// A closure for another script type does not compile (there is no
/// run-time check that could trap instead):
///
/// ```compile_fail,E0631
/// # use hotwasm_sdk::{Cx, Error};
/// struct Mine;
/// struct Other;
///
/// fn register(cx: &mut Cx<Mine>) -> Result<(), Error> {
///     cx.on_message("ping", |_: &mut Other, _, _| Ok(()))
/// }
/// ```
pub struct Cx<S> {
    tasks: HashMap<u64, Task<S>>,
    /// Shared slices, so a message costs a reference count, not a copy.
    topics: HashMap<String, Rc<[Named<MessageHandler<S>>]>>,
    /// Counts changes to `topics`, so a batch may reuse the handlers it
    /// found for the previous message's topic until they change.
    topic_changes: u64,
    /// Each watch's CloudEvents source and handler.
    watches: HashMap<u64, (Rc<str>, Named<WatchHandler<S>>)>,
    /// Counts changes to `watches`, like `topic_changes`.
    watch_changes: u64,
    /// The handler of each topic it answers the game's requests on.
    requests: HashMap<String, Shared<RequestHandler<S>>>,
}

impl<S> Default for Cx<S> {
    fn default() -> Self {
        Self {
            tasks: HashMap::new(),
            topics: HashMap::new(),
            topic_changes: 0,
            watches: HashMap::new(),
            watch_changes: 0,
            requests: HashMap::new(),
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl<S: 'static> Cx<S> {
    /// Runs `task` once, `delay` from now.
    #[track_caller]
    pub fn after<F>(&mut self, delay: Duration, task: F) -> Result<TaskId, Error>
    where
        F: FnOnce(&mut S, &mut Cx<S>) -> Result<(), Error> + 'static,
    {
        let registered_at = Location::caller();
        Ok(self.once(scheduler::after(nanos(delay))?, task, registered_at))
    }

    /// Runs `task` once, when the game's virtual time reaches `time`.
    #[track_caller]
    pub fn at<F>(&mut self, time: Duration, task: F) -> Result<TaskId, Error>
    where
        F: FnOnce(&mut S, &mut Cx<S>) -> Result<(), Error> + 'static,
    {
        let registered_at = Location::caller();
        Ok(self.once(scheduler::at(nanos(time))?, task, registered_at))
    }

    /// Keeps a one-shot task the host scheduled as `id`.
    fn once<F>(&mut self, id: u64, task: F, registered_at: &'static Location<'static>) -> TaskId
    where
        F: FnOnce(&mut S, &mut Cx<S>) -> Result<(), Error> + 'static,
    {
        let name = HandlerName::of::<F>(registered_at);
        self.tasks.insert(id, Task::Once(name, Box::new(task)));
        TaskId(id)
    }

    /// Runs `task` every `interval`, the first time one interval from now.
    #[track_caller]
    pub fn every<F>(&mut self, interval: Duration, task: F) -> Result<TaskId, Error>
    where
        F: FnMut(&mut S, &mut Cx<S>, Tick) -> Result<(), Error> + 'static,
    {
        self.every_after(interval, interval, task)
    }

    /// Runs `task` every `interval`, the first time `first_delay` from now.
    #[track_caller]
    pub fn every_after<F>(
        &mut self,
        first_delay: Duration,
        interval: Duration,
        task: F,
    ) -> Result<TaskId, Error>
    where
        F: FnMut(&mut S, &mut Cx<S>, Tick) -> Result<(), Error> + 'static,
    {
        let name = HandlerName::of::<F>(Location::caller());
        let id = scheduler::every(nanos(interval), Some(nanos(first_delay)))?;
        let handler: Shared<RepeatingTask<S>> = Rc::new(RefCell::new(task));
        let task = Named { name, handler };
        self.tasks.insert(id, Task::Repeating(task));
        Ok(TaskId(id))
    }

    /// Cancels a task; it will not run again.
    pub fn cancel(&mut self, id: TaskId) -> Result<(), Error> {
        self.tasks.remove(&id.0);
        Ok(scheduler::cancel(id.0)?)
    }

    /// Cancels every task of this instance.
    pub fn cancel_all(&mut self) {
        self.tasks.clear();
        scheduler::cancel_all();
    }

    /// Calls [`Script::update`] in every frame (`true`), or stops (`false`).
    /// Off until asked for, so a script that never asks costs nothing in a
    /// frame with nothing due. Paused frames are skipped. Asking needs the
    /// `frame` capability; stopping never fails.
    pub fn every_frame(&mut self, on: bool) -> Result<(), Error> {
        Ok(scheduler::every_frame(on)?)
    }

    /// Has the components `Q` (a tuple, `(Position, Speed)`) of the script's
    /// own entity come with every frame: in a call that handles a frame,
    /// [`me`](crate::me)`().get`, `set`, `update` and `try_get` of them cost
    /// no call to the host, and the changes are written back when the call
    /// returns (a change the host refuses is logged as a warning). Replaces
    /// what was asked before (`ecs::raw::prefetch(&[])` asks for none). Worth it
    /// for a script that reads or writes its own components every frame.
    ///
    /// Between a change and the end of the call, only these typed calls
    /// see the change; `ecs::raw` reads still see the value from before.
    pub fn prefetch<Q: QueryData>(&mut self) -> Result<(), Error> {
        let type_paths = Q::type_paths();
        crate::ecs::raw::prefetch(&type_paths)?;
        own::asked(type_paths);
        Ok(())
    }

    /// Subscribes to `topic` and calls `handler` for every message on it
    /// (also for messages the host sends straight to this entity).
    #[track_caller]
    pub fn on_message<F>(&mut self, topic: &str, handler: F) -> Result<(), Error>
    where
        F: for<'m> FnMut(&mut S, &mut Cx<S>, &Message<'m>) -> Result<(), Error> + 'static,
    {
        let name = HandlerName::of::<F>(Location::caller());
        messaging::subscribe(topic)?;
        let handler: Shared<MessageHandler<S>> = Rc::new(RefCell::new(handler));
        let named = Named { name, handler };
        let entry = self.topics.entry(topic.to_owned()).or_default();
        *entry = entry.iter().cloned().chain([named]).collect();
        self.topic_changes += 1;
        Ok(())
    }

    /// Calls `handler` for every one of the game's Bevy messages of type
    /// `M` (see [`game`](crate::game)), read from its bytes; one that does not
    /// read as an `M` is the handler's error, logged. Needs the
    /// `game-message.read` capability for its type.
    #[track_caller]
    pub fn on_game_message<M, F>(&mut self, mut handler: F) -> Result<(), Error>
    where
        M: GameMessage,
        F: FnMut(&mut S, &mut Cx<S>, M) -> Result<(), Error> + 'static,
    {
        self.on_message(&game::topic::<M>(), move |me, cx, message| {
            handler(me, cx, encoding::from_bytes(message.payload)?)
        })
    }

    /// Unsubscribes from `topic` and forgets its handlers.
    pub fn unsubscribe(&mut self, topic: &str) -> Result<(), Error> {
        self.topics.remove(topic);
        self.topic_changes += 1;
        Ok(messaging::unsubscribe(topic)?)
    }

    /// Answers the game's requests on `topic` with `handler`: the request
    /// read as a `Q`, the answer written back, both in the binary encoding
    /// the host speaks (postcard). The game asks
    /// with `world.ask_script` (and waits) or `ScriptAsk` (the answer comes
    /// as a `ScriptAnswered` that frame). An `Err` from the handler is the
    /// game's `AskError::Guest` with its text; a request that is not a `Q`
    /// is one too. A second handler for a topic replaces the first. Needs
    /// the `requests.answer` capability for the topic.
    ///
    /// ```no_run
    /// # use hotwasm_sdk::{Cx, Error};
    /// #[derive(serde::Deserialize)]
    /// struct DoorQuery { who: u64 }
    ///
    /// #[derive(Default)]
    /// struct Door { locked_for: Vec<u64> }
    ///
    /// fn register(cx: &mut Cx<Door>) -> Result<(), Error> {
    ///     cx.on_request("door/may-open", |me: &mut Door, _, query: DoorQuery| {
    ///         Ok(!me.locked_for.contains(&query.who))
    ///     })
    /// }
    /// ```
    pub fn on_request<Q, A, F>(&mut self, topic: &str, mut handler: F) -> Result<(), Error>
    where
        Q: serde::de::DeserializeOwned,
        A: serde::Serialize,
        F: FnMut(&mut S, &mut Cx<S>, Q) -> Result<A, Error> + 'static,
    {
        messaging::answer(topic)?;
        let handler: Shared<RequestHandler<S>> = Rc::new(RefCell::new(
            move |me: &mut S, cx: &mut Cx<S>, bytes: &[u8]| {
                let request = encoding::from_bytes(bytes)?;
                encoding::to_bytes(&handler(me, cx, request)?)
            },
        ));
        self.requests.insert(topic.to_owned(), handler);
        Ok(())
    }

    /// Stops answering requests on `topic`; the game's get "no handler".
    pub fn stop_answering(&mut self, topic: &str) -> Result<(), Error> {
        self.requests.remove(topic);
        Ok(messaging::stop_answering(topic)?)
    }

    /// Calls `handler` for every change `watch` covers, in the order the
    /// changes happened.
    #[track_caller]
    pub fn watch<F>(&mut self, watch: Watch, handler: F) -> Result<WatchId, Error>
    where
        F: for<'e> FnMut(&mut S, &mut Cx<S>, &Event<'e>) -> Result<(), Error> + 'static,
    {
        let name = HandlerName::of::<F>(Location::caller());
        let (id, source) = watch.register()?;
        let handler: Shared<WatchHandler<S>> = Rc::new(RefCell::new(handler));
        let named = Named { name, handler };
        self.watches.insert(id, (source.into(), named));
        self.watch_changes += 1;
        Ok(WatchId(id))
    }

    /// Stops a watch.
    pub fn unwatch(&mut self, id: WatchId) -> Result<(), Error> {
        self.watches.remove(&id.0);
        self.watch_changes += 1;
        Ok(watch::unwatch(id.0)?)
    }
}

/// Logs a handler's error through the host, which names the module.
fn report(what: impl fmt::Display, result: Result<(), Error>) {
    if let Err(error) = result {
        log(Level::Error, &format!("{what} failed: {error}"));
    }
}

/// One instance of a script: its value and its context. What
/// [`export_script!`](crate::export_script) keeps.
#[doc(hidden)]
pub struct Instance<S> {
    pub script: S,
    pub cx: Cx<S>,
}

impl<S: Script> Default for Instance<S> {
    fn default() -> Self {
        Self {
            script: S::default(),
            cx: Cx::default(),
        }
    }
}

/// The range `start..start + len` of a call's bytes; empty if the host
/// gave one outside them.
fn part(bytes: &[u8], start: u32, len: u32) -> &[u8] {
    let start = start as usize;
    bytes
        .get(start..start.saturating_add(len as usize))
        .unwrap_or_default()
}

impl<S: Script> Instance<S> {
    /// Calls the closures for a frame's batch: tasks, then messages, then
    /// watch events, then [`Script::update`]. Closures may register or
    /// cancel others; the table is never borrowed while one runs.
    pub fn dispatch(&mut self, mut batch: Batch) -> Vec<(u32, Vec<u8>)> {
        own::begin(
            batch
                .frame
                .as_mut()
                .and_then(|frame| frame.components.take()),
        );
        let Self { script, cx } = self;
        for due in batch.tasks {
            match cx.tasks.remove(&due.id) {
                Some(Task::Once(name, task)) => report(name, task(script, cx)),
                Some(Task::Repeating(task)) => {
                    cx.tasks.insert(due.id, Task::Repeating(task.clone()));
                    let tick = Tick {
                        id: TaskId(due.id),
                        missed: due.missed,
                    };
                    report(task.name, (task.handler.borrow_mut())(script, cx, tick));
                }
                None => {}
            }
        }
        // The host writes a topic once for a run of messages on it: the
        // previous message's topic range, its text, handlers, and the
        // `topic_changes` they were looked up at.
        let mut previous = None;
        for header in &batch.messages {
            let bytes = &batch.message_bytes;
            let range = (header.topic_start, header.topic_len);
            let (topic, handlers) = match previous.take() {
                Some((seen, topic, handlers, changes))
                    if seen == range && changes == cx.topic_changes =>
                {
                    (topic, handlers)
                }
                _ => {
                    let topic =
                        std::str::from_utf8(part(bytes, range.0, range.1)).unwrap_or_default();
                    (topic, cx.topics.get(topic).cloned().unwrap_or_default())
                }
            };
            previous = Some((range, topic, handlers.clone(), cx.topic_changes));
            let message = Message {
                topic,
                payload: part(bytes, header.payload_start, header.payload_len),
                sender: header.sender,
            };
            for handler in handlers.iter() {
                report(
                    handler.name,
                    (handler.handler.borrow_mut())(script, cx, &message),
                );
            }
        }
        // Events come in runs for one watch: its source and handler are
        // looked up once per run, until the watches change.
        let mut previous = None;
        for change in EventHeader::all(&batch.event_headers) {
            let watched = match previous.take() {
                Some((watch, watched, changes))
                    if watch == change.watch && changes == cx.watch_changes =>
                {
                    watched
                }
                _ => cx.watches.get(&change.watch).cloned(),
            };
            previous = Some((change.watch, watched.clone(), cx.watch_changes));
            let Some((source, handler)) = watched else {
                continue;
            };
            let bytes = &batch.event_bytes;
            let event = Event {
                id: change.id,
                source: &source,
                kind: change.kind,
                subject: std::str::from_utf8(part(bytes, change.subject_start, change.subject_len))
                    .unwrap_or_default(),
                time: UNIX_EPOCH + Duration::from_nanos(change.time),
                virtual_time: Duration::from_nanos(change.virtual_time),
                data: part(bytes, change.data_start, change.data_len),
            };
            report(
                handler.name,
                (handler.handler.borrow_mut())(script, cx, &event),
            );
        }
        if let Some(frame) = batch.frame {
            let frame = Frame {
                delta: Duration::from_nanos(frame.delta),
                elapsed: Duration::from_nanos(batch.now),
                number: frame.number,
            };
            report("update", script.update(cx, frame));
        }
        own::end()
    }

    /// Answers the game's requests, in order, with the handlers
    /// registered for their topics.
    pub fn answer(
        &mut self,
        requests: &[Request],
        bytes: &[u8],
    ) -> Vec<Result<Vec<u8>, RequestError>> {
        let Self { script, cx } = self;
        (requests.iter())
            .map(|request| {
                let topic = part(bytes, request.topic_start, request.topic_len);
                let handler = std::str::from_utf8(topic)
                    .ok()
                    .and_then(|topic| cx.requests.get(topic).cloned())
                    .ok_or(RequestError::NoHandler)?;
                let payload = part(bytes, request.payload_start, request.payload_len);
                let answer = (handler.borrow_mut())(script, cx, payload);
                answer.map_err(|error| RequestError::Failed(error.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of<F>(_: &F, registered_at: &'static Location<'static>) -> String {
        HandlerName::of::<F>(registered_at).to_string()
    }

    #[test]
    fn a_function_is_named_by_its_path_and_a_closure_by_where_it_was_registered() {
        fn tick() {}
        let here = Location::caller();
        assert!(
            name_of(&tick, here).ends_with("::tick"),
            "{}",
            name_of(&tick, here)
        );
        let closure = || {};
        assert_eq!(
            name_of(&closure, here),
            format!("the closure at {}:{}", file!(), here.line())
        );
    }
}
