//! What reaches instances (the game's messages, other guests' sends, their
//! batches) and what instances produce (log lines, messages), published as
//! Bevy's log and messages.

use std::collections::HashSet;
use std::ops::Bound;
use std::time::Duration;

use bevy::log::Level;
use bevy::prelude::*;

use super::faults::faulted;
use super::game_messages::GameMessages;
use super::{FrameContext, RECENT_RUNS, RunOrder, Runner, TrackedScript, WasmRuntime};
use crate::host::{GAME_MESSAGE_PREFIX, GuestLine, InstanceDetails, check_message};
use crate::instance::{CallCost, LiveInstance, PendingMessages, Produced};
use crate::messages::{
    FailureStage, GUEST_LOG_TARGET, ModuleLogged, ModuleMessage, Recipient, ScriptRef,
};
use crate::sandbox::QueueLimits;

/// Messages waiting for one script's next batch, bounded by count and by
/// bytes whether the script runs, loads or is quarantined.
#[derive(Default)]
pub(super) struct Inbox {
    messages: PendingMessages,
    /// The topics' and payloads' bytes, each message's counted in full.
    bytes: usize,
}

impl Inbox {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Queues a message, unless the inbox is full by `limits`; says
    /// whether it did.
    fn push(&mut self, entity: Entity, message: &Outgoing, limits: &QueueLimits) -> bool {
        let size = message.topic.len() + message.payload.len();
        let (max, max_bytes) = (limits.max_messages, limits.max_message_bytes);
        if self.messages.len() >= max || self.bytes + size > max_bytes {
            warn!(
                "dropped a message on topic {:?} for {entity}: {} messages ({} bytes) already wait \
                 for it, the most is {max} ({max_bytes} bytes)",
                message.topic,
                self.messages.len(),
                self.bytes
            );
            return false;
        }
        self.bytes += size;
        let sender = message.sender.map(Entity::to_bits);
        self.messages.push(message.topic, message.payload, sender);
        true
    }

    fn take(&mut self) -> PendingMessages {
        self.bytes = 0;
        std::mem::take(&mut self.messages)
    }
}

/// A message on its way into inboxes: from the game (no sender) or a guest.
struct Outgoing<'a> {
    topic: &'a str,
    payload: &'a [u8],
    sender: Option<Entity>,
}

/// Keeps a paused script's watch events for when it resumes, within
/// `limits`; counts the rest as dropped, with a warning at the first drop
/// of each pause.
fn hold_events(entity: Entity, script: &mut TrackedScript, limits: &QueueLimits) {
    let (max, max_bytes) = (limits.max_held_events, limits.max_held_event_bytes);
    let dropped = script.events.keep_first(max, max_bytes);
    if dropped == 0 {
        return;
    }
    if !script.dropping_events {
        script.dropping_events = true;
        warn!(
            "dropping watch events for the script on {entity} (paused, or put off by the frame \
             budget): {} already wait for it, the most is {max} ({max_bytes} bytes)",
            script.events.len()
        );
    }
    script.dropped_events += dropped as u64;
}

/// Topics a message found no listener on, so that is said once per topic
/// (up to [`UnheardTopics::MAX`] topics, then no more).
#[derive(Default)]
pub(super) struct UnheardTopics {
    said: HashSet<Box<str>>,
}

impl UnheardTopics {
    /// Bounds the memory a guest inventing topics can take.
    const MAX: usize = 1024;

    /// Whether `topic` is one to say now: the first time it is unheard.
    fn first_time(&mut self, topic: &str) -> bool {
        if self.said.len() >= Self::MAX || self.said.contains(topic) {
            return false;
        }
        self.said.insert(topic.into())
    }
}

/// A message a guest sent, on its way to the other subscribers.
pub(super) struct Sent {
    sender: Entity,
    topic: String,
    payload: Vec<u8>,
}

/// Publishes what `instance` logged and sent during its last calls: Bevy's
/// log and [`ModuleLogged`], [`ModuleMessage`], and its sends kept in
/// `sent` for the other subscribers.
pub(super) fn publish(world: &mut World, instance: &mut LiveInstance, sent: &mut Vec<Sent>) {
    let Produced {
        lines,
        sent: messages,
    } = instance.take_output();
    let script = instance.script_ref();
    let path = &script.path;
    for GuestLine { level, message } in lines {
        match level {
            Level::ERROR => error!(target: GUEST_LOG_TARGET, "[{path}] {message}"),
            Level::WARN => warn!(target: GUEST_LOG_TARGET, "[{path}] {message}"),
            Level::INFO => info!(target: GUEST_LOG_TARGET, "[{path}] {message}"),
            Level::DEBUG => debug!(target: GUEST_LOG_TARGET, "[{path}] {message}"),
            Level::TRACE => trace!(target: GUEST_LOG_TARGET, "[{path}] {message}"),
        }
        world.write_message(ModuleLogged {
            script: script.clone(),
            level,
            message,
        });
    }
    for (topic, payload) in messages {
        if topic.starts_with(GAME_MESSAGE_PREFIX) {
            write_game_message(world, script, &topic, &payload);
        }
        world.write_message(ModuleMessage {
            from: script.clone(),
            topic: topic.clone(),
            payload: payload.clone(),
        });
        sent.push(Sent {
            sender: script.entity,
            topic,
            payload,
        });
    }
}

/// Writes a script's message on a game message type's topic as that Bevy
/// message; one that does not read as the type is dropped with a warning.
fn write_game_message(world: &mut World, script: &ScriptRef, topic: &str, bytes: &[u8]) {
    let writer = (world.get_resource::<GameMessages>()).and_then(|types| types.writer(topic));
    match writer.map(|write| write(world, bytes)) {
        Some(Ok(())) => {}
        Some(Err(cause)) => warn!("{script}: its {topic} message is not one: {cause}"),
        None => warn!(
            "{script}: sent on {topic}, but the game registered no such message type \
             (App::add_script_message)"
        ),
    }
}

impl Runner {
    /// Queues a message from the game for its recipients.
    /// A [`HostMessage`](crate::messages::HostMessage), or one of the game's own Bevy messages (to the
    /// subscribers of its type's topic), without copying it.
    pub(super) fn deliver(&mut self, to: Recipient, topic: &str, payload: &[u8]) {
        if let Err(error) = check_message(topic, payload) {
            warn!("dropped a message from the game on topic {topic:?}: {error}");
            return;
        }
        let message = Outgoing {
            topic,
            payload,
            sender: None,
        };
        match to {
            Recipient::Entity(entity) => self.queue(RunOrder(entity), &message),
            Recipient::Subscribers => self.queue_for_subscribers(&message),
        }
    }

    fn queue(&mut self, order: RunOrder, message: &Outgoing) {
        let Some(script) = self.scripts.get_mut(&order) else {
            debug!(
                "dropped a HostMessage on topic {:?}: {} has no WasmScript",
                message.topic, order.0
            );
            return;
        };
        let first = script.inbox.is_empty();
        if script.inbox.push(order.0, message, &self.queues) && first {
            self.queued_to.push(order);
        }
    }

    /// Queues `message` for every running script subscribed to its topic,
    /// except its sender.
    fn queue_for_subscribers(&mut self, message: &Outgoing) {
        let mut heard = false;
        for (order, script) in &mut self.scripts {
            let subscribed = script
                .instance
                .as_ref()
                .is_some_and(|instance| instance.is_subscribed(message.topic));
            if Some(order.0) != message.sender && subscribed {
                heard = true;
                let first = script.inbox.is_empty();
                if script.inbox.push(order.0, message, &self.queues) && first {
                    self.queued_to.push(*order);
                }
            }
        }
        if !heard && self.unheard.first_time(message.topic) {
            let from = match message.sender {
                Some(entity) => format!("the script on {entity}"),
                None => "the game".to_owned(),
            };
            debug!(
                "no script listens to topic {:?} (first sent by {from}); messages on it reach \
                 only the game's ModuleMessage readers",
                message.topic
            );
        }
    }

    /// One `handle-batch` call for every running instance with tasks due,
    /// messages waiting, watched changes, or the frame it asked for;
    /// instances with nothing due are not called. Once the frame's budget
    /// is spent, the rest keep their work for the next frame, which begins
    /// with the first of them.
    pub(super) fn run_batches(&mut self, frame: &mut FrameContext) {
        let this_frame = frame.this_frame.clone();
        // Starts and hot swaps this frame spent part of the budget.
        let mut spent: Duration = (self.charged.iter())
            .filter_map(|order| self.scripts.get(order))
            .map(|script| script.this_frame.time)
            .sum();
        let first = if frame.fixed {
            self.resume_fixed_at.take()
        } else {
            self.resume_at.take()
        };
        let passes = match first {
            Some(first) => [
                (Bound::Included(first), Bound::Unbounded),
                (Bound::Unbounded, Bound::Excluded(first)),
            ],
            None => [(Bound::Unbounded, Bound::Unbounded); 2],
        };
        let Runner {
            scripts,
            charged,
            queued_to,
            sent,
            restarts,
            queues,
            resume_at,
            resume_fixed_at,
            ..
        } = self;
        let passes = if first.is_some() {
            &passes[..]
        } else {
            &passes[..1]
        };
        for &range in passes {
            for (order, script) in scripts.range_mut(range) {
                // Called in its own schedule's pass only.
                if script.fixed != frame.fixed {
                    continue;
                }
                if script.paused {
                    if !script.events.is_empty() {
                        hold_events(order.0, script, queues);
                        queued_to.push(*order);
                    }
                    continue;
                }
                if !script.has_work(frame.now, this_frame.as_ref()) {
                    continue;
                }
                if frame.budget.is_some_and(|budget| spent >= budget) {
                    let resume = if frame.fixed {
                        &mut *resume_fixed_at
                    } else {
                        &mut *resume_at
                    };
                    resume.get_or_insert(*order);
                    script.this_frame.postponed += 1;
                    // Its events wait, bounded as a paused script's are.
                    hold_events(order.0, script, queues);
                    queued_to.push(*order);
                    continue;
                }
                charged.push(*order);
                let Some(instance) = &mut script.instance else {
                    continue;
                };
                let messages = script.inbox.take();
                let events = std::mem::take(&mut script.events);
                let result = instance.handle_batch(
                    &mut frame.world,
                    frame.now,
                    messages,
                    events,
                    this_frame.clone(),
                );
                publish(&mut frame.world, instance, sent);
                let cost = instance.take_cost();
                spent += cost.time;
                // Only a fault needs the name, after the instance is gone.
                let failed = result.map_err(|error| (error, instance.script_ref().clone()));
                script.charge(cost);
                if let Err((error, script_ref)) = failed
                    && let Some(at) = faulted(frame, script, &script_ref, FailureStage::Run, error)
                {
                    restarts.insert(*order, at);
                }
            }
        }
    }

    /// Hands what guests sent this frame to the other subscribers, for the
    /// next frame.
    pub(super) fn route_sent(&mut self) {
        for Sent {
            sender,
            topic,
            payload,
        } in std::mem::take(&mut self.sent)
        {
            self.queue_for_subscribers(&Outgoing {
                topic: &topic,
                payload: &payload,
                sender: Some(sender),
            });
        }
    }

    /// Closes the frame's accounting of every script's calls and queued
    /// messages in the status.
    pub(super) fn close_frame(&mut self, status: &mut WasmRuntime) {
        status.last_frame = CallCost::default();
        status.runs += 1;
        let run = status.runs;
        for order in self.charged.drain(..).chain(self.queued_to.drain(..)) {
            let (Some(script), Some(script_status)) =
                (self.scripts.get_mut(&order), status.scripts.get_mut(&order))
            else {
                continue;
            };
            script_status.queued_messages = script.inbox.len();
            script_status.held_events = script.events.len();
            script_status.stats.dropped_events = script.dropped_events;
            match &mut script.instance {
                Some(instance) => {
                    if let Some(details) = instance.changed_details() {
                        script_status.details = details;
                    }
                }
                None => script_status.details = InstanceDetails::default(),
            }
            // A script charged twice in a frame is closed at its first turn.
            let cost = std::mem::take(&mut script.this_frame);
            status.last_frame.postponed += cost.postponed;
            script_status.stats.close_frame(cost);
            if cost.calls == 0 && cost.faults == 0 {
                continue;
            }
            status.last_frame.time += cost.time;
            status.last_frame.faults += cost.faults;
            let recent = &mut script_status.recent;
            while recent
                .front()
                .is_some_and(|&(at, _)| at + RECENT_RUNS <= run)
            {
                recent.pop_front();
            }
            recent.push_back((run, cost.time));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unheard_topic_is_said_once_and_the_topics_kept_are_bounded() {
        let mut unheard = UnheardTopics::default();
        assert!(unheard.first_time("spin/pong"));
        assert!(!unheard.first_time("spin/pong"), "said once");
        for n in 1..UnheardTopics::MAX {
            assert!(unheard.first_time(&format!("topic-{n}")));
        }
        assert!(
            !unheard.first_time("one-more"),
            "beyond the bound, nothing is kept"
        );
        assert_eq!(unheard.said.len(), UnheardTopics::MAX);
    }
}
