//! The guest-side table from task ids and topics to closures, and the
//! dispatch of a frame's batch through it.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use crate::bindings::hotwasm::script::messaging::{self, Error as MessagingError};
use crate::bindings::hotwasm::script::scheduler::{self, Error as SchedulerError};
use crate::bindings::hotwasm::script::types::{Batch, ChangeKind, Message};
use crate::bindings::hotwasm::script::watch::{self, ComponentChanges, Error as WatchError};

/// A scheduled task, to [`cancel`] it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(pub u64);

/// What a repeating task's closure learns about its tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// The task.
    pub id: TaskId,
    /// Ticks that fell inside this frame before this one and were skipped:
    /// a repeating task runs at most once per frame.
    pub missed: u32,
}

/// A watch, to [`unwatch`] it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WatchId(pub u64);

/// A change one of this instance's watches matched: a CloudEvents 1.0 event.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// CloudEvents `id`, unique per source.
    pub id: u64,
    /// CloudEvents `source`, e.g. `/kv/scores`.
    pub source: &'a str,
    /// What happened.
    pub kind: ChangeKind,
    /// CloudEvents `subject`: the key (or the entity, for ECS changes).
    pub subject: &'a str,
    /// CloudEvents `time`, as the game's virtual time of the frame.
    pub time: Duration,
    /// The new value (empty for a delete).
    pub data: &'a [u8],
}

impl Event<'_> {
    /// CloudEvents `type`, e.g. `dev.hotwasm.kv.set`.
    pub fn event_type(&self) -> &'static str {
        match self.kind {
            ChangeKind::KvSet => "dev.hotwasm.kv.set",
            ChangeKind::KvDelete => "dev.hotwasm.kv.delete",
            ChangeKind::ComponentAdded => "dev.hotwasm.component.added",
            ChangeKind::ComponentChanged => "dev.hotwasm.component.changed",
            ChangeKind::ComponentRemoved => "dev.hotwasm.component.removed",
            ChangeKind::ResourceChanged => "dev.hotwasm.resource.changed",
        }
    }

    /// CloudEvents `datacontenttype`.
    pub fn content_type(&self) -> &'static str {
        match self.kind {
            ChangeKind::KvSet | ChangeKind::KvDelete => "application/octet-stream",
            _ => "application/json",
        }
    }
}

type OnceTask = Box<dyn FnOnce(&mut dyn Any)>;
type WatchHandler = Rc<RefCell<dyn FnMut(&mut dyn Any, &Event)>>;
type RepeatingTask = Rc<RefCell<dyn FnMut(&mut dyn Any, Tick)>>;
type MessageHandler = Rc<RefCell<dyn FnMut(&mut dyn Any, &Message)>>;

enum Task {
    Once(OnceTask),
    Repeating(RepeatingTask),
}

#[derive(Default)]
struct Handlers {
    tasks: HashMap<u64, Task>,
    /// Shared slices, so a message costs a reference count, not a copy.
    topics: HashMap<String, Rc<[MessageHandler]>>,
    /// Each watch's CloudEvents source and handler.
    watches: HashMap<u64, (Rc<str>, WatchHandler)>,
}

thread_local! {
    static HANDLERS: RefCell<Handlers> = RefCell::default();
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Downcasts the script the host runs to the type a closure was registered
/// for; a mismatch is a bug in the guest, so it traps with a message.
fn script_of<S: 'static>(script: &mut dyn Any) -> &mut S {
    script.downcast_mut::<S>().unwrap_or_else(|| {
        panic!(
            "a handler takes `&mut {}`, which is not the exported script type",
            std::any::type_name::<S>()
        )
    })
}

fn register(id: u64, task: Task) -> TaskId {
    HANDLERS.with_borrow_mut(|handlers| handlers.tasks.insert(id, task));
    TaskId(id)
}

fn register_once<S: 'static>(id: u64, task: impl FnOnce(&mut S) + 'static) -> TaskId {
    register(
        id,
        Task::Once(Box::new(move |script| task(script_of(script)))),
    )
}

/// The game's virtual time now (it stops while the game is paused).
pub fn now() -> Duration {
    Duration::from_nanos(scheduler::now())
}

/// Runs `task` once, `delay` from now.
pub fn after<S: 'static>(
    delay: Duration,
    task: impl FnOnce(&mut S) + 'static,
) -> Result<TaskId, SchedulerError> {
    Ok(register_once(scheduler::after(nanos(delay))?, task))
}

/// Runs `task` once, when the game's virtual time reaches `time`.
pub fn at<S: 'static>(
    time: Duration,
    task: impl FnOnce(&mut S) + 'static,
) -> Result<TaskId, SchedulerError> {
    Ok(register_once(scheduler::at(nanos(time))?, task))
}

/// Runs `task` every `interval`, the first time one interval from now.
pub fn every<S: 'static>(
    interval: Duration,
    task: impl FnMut(&mut S, Tick) + 'static,
) -> Result<TaskId, SchedulerError> {
    every_after(interval, interval, task)
}

/// Runs `task` every `interval`, the first time `first_delay` from now.
pub fn every_after<S: 'static>(
    first_delay: Duration,
    interval: Duration,
    mut task: impl FnMut(&mut S, Tick) + 'static,
) -> Result<TaskId, SchedulerError> {
    let id = scheduler::every(nanos(interval), Some(nanos(first_delay)))?;
    let task: RepeatingTask = Rc::new(RefCell::new(move |script: &mut dyn Any, tick| {
        task(script_of(script), tick)
    }));
    Ok(register(id, Task::Repeating(task)))
}

/// Cancels a task; it will not run again.
pub fn cancel(id: TaskId) -> Result<(), SchedulerError> {
    HANDLERS.with_borrow_mut(|handlers| handlers.tasks.remove(&id.0));
    scheduler::cancel(id.0)
}

/// Cancels every task of this instance.
pub fn cancel_all() {
    HANDLERS.with_borrow_mut(|handlers| handlers.tasks.clear());
    scheduler::cancel_all();
}

/// Subscribes to `topic` and calls `handler` for every message on it
/// (also for messages the host sends straight to this entity).
pub fn on_message<S: 'static>(
    topic: &str,
    mut handler: impl FnMut(&mut S, &Message) + 'static,
) -> Result<(), MessagingError> {
    messaging::subscribe(topic)?;
    let handler: MessageHandler = Rc::new(RefCell::new(
        move |script: &mut dyn Any, message: &Message| handler(script_of(script), message),
    ));
    HANDLERS.with_borrow_mut(|handlers| {
        let entry = handlers.topics.entry(topic.to_owned()).or_default();
        *entry = entry.iter().cloned().chain([handler]).collect();
    });
    Ok(())
}

/// Unsubscribes from `topic` and forgets its handlers.
pub fn unsubscribe(topic: &str) -> Result<(), MessagingError> {
    HANDLERS.with_borrow_mut(|handlers| handlers.topics.remove(topic));
    messaging::unsubscribe(topic)
}

/// Sends `payload` on `topic` to the host and every other subscriber.
pub fn send(topic: &str, payload: &[u8]) -> Result<(), MessagingError> {
    messaging::send(topic, payload)
}

fn register_watch<S: 'static>(
    id: u64,
    source: String,
    mut handler: impl FnMut(&mut S, &Event) + 'static,
) -> WatchId {
    let handler: WatchHandler =
        Rc::new(RefCell::new(move |script: &mut dyn Any, event: &Event| {
            handler(script_of(script), event)
        }));
    HANDLERS.with_borrow_mut(|handlers| handlers.watches.insert(id, (source.into(), handler)));
    WatchId(id)
}

/// Which keys of a bucket a key-value watch covers.
enum Keys<'a> {
    Exact(&'a str),
    Prefix(&'a str),
}

/// The one way key-value watches are made: on the host, then in the table.
fn watch_kv<S: 'static>(
    bucket: &str,
    keys: Keys,
    skip_own_writes: bool,
    handler: impl FnMut(&mut S, &Event) + 'static,
) -> Result<WatchId, WatchError> {
    let id = match keys {
        Keys::Exact(key) => watch::watch_key(bucket, key, skip_own_writes)?,
        Keys::Prefix(prefix) => watch::watch_prefix(bucket, prefix, skip_own_writes)?,
    };
    Ok(register_watch(id, format!("/kv/{bucket}"), handler))
}

/// Calls `handler` whenever `key` of `bucket` is set or deleted, by anyone:
/// a game system, a guest (this one included), or a person editing the
/// bucket's file.
pub fn watch_key<S: 'static>(
    bucket: &str,
    key: &str,
    handler: impl FnMut(&mut S, &Event) + 'static,
) -> Result<WatchId, WatchError> {
    watch_kv(bucket, Keys::Exact(key), false, handler)
}

/// Like [`watch_key`], but leaves out this instance's own writes: for a
/// script that both writes a key and reacts to others writing it.
pub fn watch_key_except_own<S: 'static>(
    bucket: &str,
    key: &str,
    handler: impl FnMut(&mut S, &Event) + 'static,
) -> Result<WatchId, WatchError> {
    watch_kv(bucket, Keys::Exact(key), true, handler)
}

/// Calls `handler` whenever a key of `bucket` starting with `prefix` is set
/// or deleted.
pub fn watch_prefix<S: 'static>(
    bucket: &str,
    prefix: &str,
    handler: impl FnMut(&mut S, &Event) + 'static,
) -> Result<WatchId, WatchError> {
    watch_kv(bucket, Keys::Prefix(prefix), false, handler)
}

/// Like [`watch_prefix`], but leaves out this instance's own writes.
pub fn watch_prefix_except_own<S: 'static>(
    bucket: &str,
    prefix: &str,
    handler: impl FnMut(&mut S, &Event) + 'static,
) -> Result<WatchId, WatchError> {
    watch_kv(bucket, Keys::Prefix(prefix), true, handler)
}

/// Calls `handler` for the `changes` of the component type registered in
/// the game under `type_path` (e.g. `my_game::Health`): the event's subject
/// is the entity (`Entity::to_bits()` in decimal), its data the component as
/// JSON (empty for a removal).
pub fn watch_component<S: 'static>(
    type_path: &str,
    changes: ComponentChanges,
    handler: impl FnMut(&mut S, &Event) + 'static,
) -> Result<WatchId, WatchError> {
    let id = watch::watch_component(type_path, changes)?;
    Ok(register_watch(
        id,
        format!("/ecs/component/{type_path}"),
        handler,
    ))
}

/// Calls `handler` once in every frame the resource registered under
/// `type_path` was inserted or changed, with the resource as JSON.
pub fn watch_resource<S: 'static>(
    type_path: &str,
    handler: impl FnMut(&mut S, &Event) + 'static,
) -> Result<WatchId, WatchError> {
    let id = watch::watch_resource(type_path)?;
    Ok(register_watch(
        id,
        format!("/ecs/resource/{type_path}"),
        handler,
    ))
}

/// Stops a watch.
pub fn unwatch(id: WatchId) -> Result<(), WatchError> {
    HANDLERS.with_borrow_mut(|handlers| handlers.watches.remove(&id.0));
    watch::unwatch(id.0)
}

/// Calls the closures for a frame's batch: tasks, then messages, then watch
/// events. Closures
/// may register or cancel others; the table is never borrowed while one runs.
pub fn dispatch(script: &mut dyn Any, batch: Batch) {
    for due in batch.tasks {
        let task = HANDLERS.with_borrow_mut(|handlers| match handlers.tasks.get(&due.id) {
            Some(Task::Repeating(task)) => Some(Task::Repeating(task.clone())),
            Some(Task::Once(_)) => handlers.tasks.remove(&due.id),
            None => None,
        });
        match task {
            Some(Task::Once(task)) => task(script),
            Some(Task::Repeating(task)) => {
                let tick = Tick {
                    id: TaskId(due.id),
                    missed: due.missed,
                };
                (task.borrow_mut())(script, tick)
            }
            None => {}
        }
    }
    for message in &batch.messages {
        let handlers = HANDLERS
            .with_borrow(|handlers| handlers.topics.get(&message.topic).cloned())
            .unwrap_or_default();
        for handler in handlers.iter() {
            (handler.borrow_mut())(script, message);
        }
    }
    let time = Duration::from_nanos(batch.now);
    for change in &batch.events {
        let Some((source, handler)) =
            HANDLERS.with_borrow(|handlers| handlers.watches.get(&change.watch).cloned())
        else {
            continue;
        };
        let part = |start: u32, len: u32| {
            let start = start as usize;
            batch
                .event_bytes
                .get(start..start + len as usize)
                .unwrap_or_default()
        };
        let event = Event {
            id: change.id,
            source: &source,
            kind: change.kind,
            subject: std::str::from_utf8(part(change.subject_start, change.subject_len))
                .unwrap_or_default(),
            time,
            data: part(change.data_start, change.data_len),
        };
        (handler.borrow_mut())(script, &event);
    }
}
