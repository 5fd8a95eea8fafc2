//! The game's questions to scripts, with answers: asked now from a
//! `World` ([`AskScript::ask_script`]), or this frame from any system
//! ([`ScriptAsk`]), answered after the frame's hot swaps and batches as a
//! [`ScriptAnswered`]. Either way a script answers with the handlers it
//! registered (`messaging.answer`), in one `handle-requests` call for all
//! that was asked of it, inside its sandbox.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use super::delivery::publish;
use super::encoding;
use super::faults::faulted;
use super::{Clock, FrameContext, RunOrder, Runner, virtual_now, with_runner};
use crate::host::{MAX_PAYLOAD_BYTES, MessageError, RequestError, check_message};
use crate::instance::PendingRequests;
use crate::messages::{FailureStage, ScriptRef};
use crate::sandbox::FaultKind;

/// Why a script gave no answer.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum AskError {
    /// The entity has no [`WasmScript`](crate::WasmScript).
    #[error("{0} has no script")]
    NoSuchScript(Entity),
    /// The script has no running instance.
    #[error("the script on {entity} is not running: {why}")]
    NotRunning {
        /// The script's entity.
        entity: Entity,
        /// Why: its module has not loaded, it restarts after a fault, its
        /// start failed or its module was unloaded.
        why: &'static str,
    },
    /// The script is paused ([`WasmRuntime::pause`](crate::WasmRuntime::pause)).
    #[error("the script on {0} is paused")]
    Paused(Entity),
    /// The script is quarantined after repeated faults
    /// ([`WasmRuntime::release`](crate::WasmRuntime::release) lets it start again).
    #[error("the script on {0} is quarantined")]
    Quarantined(Entity),
    /// The script's capabilities do not let it answer on this topic.
    #[error("{script} may not answer requests on {topic:?}: denied: requests.answer {topic}")]
    Denied {
        /// The script.
        script: ScriptRef,
        /// The topic asked.
        topic: String,
    },
    /// The script answers no requests on this topic.
    #[error("{script} does not answer requests on {topic:?}")]
    NoHandler {
        /// The script.
        script: ScriptRef,
        /// The topic asked.
        topic: String,
    },
    /// The script's handler returned an error.
    #[error("{script} answered {topic:?} with an error: {message}")]
    Guest {
        /// The script.
        script: ScriptRef,
        /// The topic asked.
        topic: String,
        /// The handler's error, as the guest wrote it.
        message: String,
    },
    /// The script faulted answering (a trap, its CPU budget, a memory
    /// limit): counted, restarted and quarantined like any fault.
    #[error("{script} faulted answering {topic:?}: {fault}")]
    Fault {
        /// The script.
        script: ScriptRef,
        /// The topic asked.
        topic: String,
        /// What stopped it.
        fault: FaultKind,
    },
    /// The topic or the request is out of bounds (the limits of messages).
    #[error("the request was not sent: {0}")]
    Payload(MessageError),
    /// The script's answer is over [`MAX_PAYLOAD_BYTES`](crate::sandbox::MAX_PAYLOAD_BYTES).
    #[error("{script} answered {topic:?} with {len} bytes, more than {max}")]
    AnswerTooLarge {
        /// The script.
        script: ScriptRef,
        /// The topic asked.
        topic: String,
        /// The answer's length.
        len: usize,
        /// The most an answer may hold.
        max: u32,
    },
    /// The request could not be encoded (postcard).
    #[error("the request could not be encoded: {0}")]
    Encode(String),
    /// The answer is not the type asked for.
    #[error("the answer is not what was asked for: {0}")]
    Decode(String),
    /// Asked now while scripts run: from a hook or an observer a guest's
    /// call set off, or with no `HotWasmPlugin` ready. Ask through
    /// [`ScriptAsk`] instead.
    #[error(
        "a script was asked now while scripts run (or before HotWasmPlugin is ready): ask \
         through ScriptAsk instead"
    )]
    Busy,
}

/// Asks a script a question and waits for the answer: for exclusive
/// systems, commands and tests, anything with the whole `World`.
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy_hotwasm::prelude::*;
/// # #[derive(serde::Serialize)] struct DoorQuery { who: u64 }
/// fn try_door(world: &mut World, door: Entity) {
///     match world.ask_script::<_, bool>(door, "door/may-open", &DoorQuery { who: 7 }) {
///         Ok(open) => info!("the door says {open}"),
///         Err(error) => warn!("{error}"),
///     }
/// }
/// ```
pub trait AskScript {
    /// Asks the script on `entity` `request` on `topic` and returns
    /// its answer, both in the binary encoding (postcard, as the guest SDK). The guest runs at once, inside its
    /// sandbox: its CPU budget, memory limits and per-call quotas.
    fn ask_script<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        entity: Entity,
        topic: &str,
        request: &Q,
    ) -> Result<A, AskError>;

    /// [`ask_script`](AskScript::ask_script) with bytes both ways.
    fn ask_script_bytes(
        &mut self,
        entity: Entity,
        topic: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, AskError>;
}

impl AskScript for World {
    fn ask_script<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        entity: Entity,
        topic: &str,
        request: &Q,
    ) -> Result<A, AskError> {
        let payload = encode(request)?;
        decode(&self.ask_script_bytes(entity, topic, &payload)?)
    }

    fn ask_script_bytes(
        &mut self,
        entity: Entity,
        topic: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, AskError> {
        check_message(topic, payload).map_err(AskError::Payload)?;
        let clock = Clock {
            now: virtual_now(self),
            this_frame: None,
        };
        with_runner(self, clock, false, |runner, frame| {
            runner
                .answer(frame, RunOrder(entity), &[(topic, payload)])
                .pop()
        })
        .flatten()
        .unwrap_or(Err(AskError::Busy))
    }
}

/// A question asked through [`ScriptAsk`]: its answer comes as the
/// [`ScriptAnswered`] with the same ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AskTicket(u64);

/// The answer to a question asked through [`ScriptAsk`], written by
/// [`WasmSystems::Run`](crate::WasmSystems::Run) in the frame it was asked
/// (before the run) or the next (after it).
#[derive(Message, Clone, Debug)]
pub struct ScriptAnswered {
    /// What [`ScriptAsk::ask`] returned.
    pub ticket: AskTicket,
    /// The script asked.
    pub entity: Entity,
    /// The topic asked.
    pub topic: String,
    /// The answer's bytes, or why there is none.
    pub result: Result<Vec<u8>, AskError>,
}

impl ScriptAnswered {
    /// The answer, read as an `A`.
    pub fn answer<A: DeserializeOwned>(&self) -> Result<A, AskError> {
        decode(self.result.as_ref().map_err(Clone::clone)?)
    }
}

/// Asks scripts questions from any system, without waiting: each answer
/// arrives as a [`ScriptAnswered`] once [`WasmSystems::Run`](crate::WasmSystems::Run)
/// has run, in the same frame when the asking system runs before it.
/// Asking takes `&self`, so any number of systems can ask in parallel.
///
/// ```no_run
/// # use bevy::prelude::*;
/// # use bevy_hotwasm::prelude::*;
/// # use std::collections::HashMap;
/// #[derive(Resource, Default)]
/// struct Asked(HashMap<AskTicket, Entity>);
///
/// fn ask_scoring(asks: ScriptAsk, scoring: Single<Entity, With<WasmScript>>, mut asked: ResMut<Asked>) {
///     if let Ok(ticket) = asks.ask(*scoring, "score/kill", &3u32) {
///         asked.0.insert(ticket, *scoring);
///     }
/// }
///
/// fn read_points(mut answers: MessageReader<ScriptAnswered>, mut asked: ResMut<Asked>) {
///     for answered in answers.read() {
///         asked.0.remove(&answered.ticket);
///         match answered.answer::<u64>() {
///             Ok(points) => info!("+{points}"),
///             Err(error) => warn!("{error}"),
///         }
///     }
/// }
///
/// App::new().init_resource::<Asked>().add_systems(
///     Update,
///     (ask_scoring.before(WasmSystems::Run), read_points.after(WasmSystems::Run)),
/// );
/// ```
#[derive(SystemParam)]
pub struct ScriptAsk<'w> {
    queue: Res<'w, AskQueue>,
}

impl ScriptAsk<'_> {
    /// Asks the script on `entity` `request` on `topic`. An
    /// error now is a request that cannot be sent; every other answer comes
    /// as a [`ScriptAnswered`] with the ticket returned.
    pub fn ask<Q: Serialize>(
        &self,
        entity: Entity,
        topic: &str,
        request: &Q,
    ) -> Result<AskTicket, AskError> {
        self.ask_bytes(entity, topic, encode(request)?)
    }

    /// [`ask`](ScriptAsk::ask) with bytes.
    pub fn ask_bytes(
        &self,
        entity: Entity,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<AskTicket, AskError> {
        check_message(topic, &payload).map_err(AskError::Payload)?;
        let ticket = AskTicket(self.queue.next.fetch_add(1, Ordering::Relaxed));
        // The receiver lives in the same resource: the send cannot fail.
        let _ = self.queue.sender.send(PendingAsk {
            ticket,
            entity,
            topic: topic.to_owned(),
            payload,
        });
        Ok(ticket)
    }
}

/// Questions asked through [`ScriptAsk`] and not yet answered.
#[derive(Resource)]
pub(crate) struct AskQueue {
    sender: Sender<PendingAsk>,
    receiver: Receiver<PendingAsk>,
    next: AtomicU64,
}

impl Default for AskQueue {
    fn default() -> Self {
        let (sender, receiver) = crossbeam_channel::unbounded();
        Self {
            sender,
            receiver,
            next: AtomicU64::new(1),
        }
    }
}

impl AskQueue {
    /// Everything asked since the last time.
    pub(super) fn take(&self) -> Vec<PendingAsk> {
        self.receiver.try_iter().collect()
    }
}

pub(super) struct PendingAsk {
    ticket: AskTicket,
    entity: Entity,
    topic: String,
    payload: Vec<u8>,
}

fn encode<Q: Serialize>(request: &Q) -> Result<Vec<u8>, AskError> {
    encoding::to_bytes(request).map_err(AskError::Encode)
}

fn decode<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, AskError> {
    encoding::from_bytes(bytes).map_err(AskError::Decode)
}

impl Runner {
    /// Answers what systems asked, each script's questions in one call, in
    /// entity order; writes each answer as a [`ScriptAnswered`].
    pub(super) fn answer_asks(&mut self, frame: &mut FrameContext, asks: Vec<PendingAsk>) {
        let mut by_script: BTreeMap<RunOrder, Vec<PendingAsk>> = BTreeMap::new();
        for ask in asks {
            by_script.entry(RunOrder(ask.entity)).or_default().push(ask);
        }
        for (order, asks) in by_script {
            let requests: Vec<(&str, &[u8])> = (asks.iter())
                .map(|ask| (ask.topic.as_str(), ask.payload.as_slice()))
                .collect();
            let answers = self.answer(frame, order, &requests);
            for (ask, result) in asks.into_iter().zip(answers) {
                frame.world.write_message(ScriptAnswered {
                    ticket: ask.ticket,
                    entity: ask.entity,
                    topic: ask.topic,
                    result,
                });
            }
        }
    }

    /// Asks the script `order` every request (topic, payload) in one call:
    /// one answer per request. A fault answers each with the fault, and is
    /// counted, restarted or quarantined like any other.
    pub(super) fn answer(
        &mut self,
        frame: &mut FrameContext,
        order: RunOrder,
        requests: &[(&str, &[u8])],
    ) -> Vec<Result<Vec<u8>, AskError>> {
        let entity = order.0;
        let refused = |error: AskError| requests.iter().map(|_| Err(error.clone())).collect();
        match frame.status.scripts.get(&order) {
            None => return refused(AskError::NoSuchScript(entity)),
            Some(status) if status.quarantined => return refused(AskError::Quarantined(entity)),
            Some(status) if status.paused => return refused(AskError::Paused(entity)),
            Some(_) => {}
        }
        let why = self.why_not_running(order);
        let Some(script) = self.scripts.get_mut(&order) else {
            return refused(AskError::NoSuchScript(entity));
        };
        let Some(instance) = &mut script.instance else {
            return refused(AskError::NotRunning { entity, why });
        };
        let script_ref = instance.script_ref().clone();
        let mut answers: Vec<Option<Result<Vec<u8>, AskError>>> = Vec::new();
        let mut pending = PendingRequests::default();
        for &(topic, payload) in requests {
            // Named only when refused: a request that goes through costs no copy.
            let named = || (script_ref.clone(), topic.to_owned());
            answers.push(if let Err(error) = check_message(topic, payload) {
                Some(Err(AskError::Payload(error)))
            } else if !instance.may_answer(topic) {
                let (script, topic) = named();
                Some(Err(AskError::Denied { script, topic }))
            } else if !instance.answers(topic) {
                let (script, topic) = named();
                Some(Err(AskError::NoHandler { script, topic }))
            } else {
                pending.push(topic, payload);
                None
            });
        }
        if pending.len() == 0 {
            return answers.into_iter().flatten().collect();
        }
        let result = instance.handle_requests(&mut frame.world, frame.now, &pending);
        publish(&mut frame.world, instance, &mut self.sent);
        let cost = instance.take_cost();
        script.charge(cost);
        self.charged.push(order);
        let mut guest = match result {
            Ok(answers) => Ok(answers.into_iter()),
            Err(error) => {
                let fault = error.fault.clone().unwrap_or(FaultKind::Trap {
                    message: error.cause.clone(),
                    backtrace: None,
                });
                if let Some(at) = faulted(frame, script, &script_ref, FailureStage::Request, error)
                {
                    self.restarts.insert(order, at);
                }
                Err(fault)
            }
        };
        (answers.into_iter().zip(requests))
            .map(|(refused, &(topic, _))| {
                if let Some(refused) = refused {
                    return refused;
                }
                let named = || (script_ref.clone(), topic.to_owned());
                let answer = match &mut guest {
                    Ok(answers) => answers.next(),
                    Err(fault) => {
                        let (script, topic) = named();
                        let fault = fault.clone();
                        return Err(AskError::Fault {
                            script,
                            topic,
                            fault,
                        });
                    }
                };
                match answer {
                    Some(Ok(bytes)) if bytes.len() <= MAX_PAYLOAD_BYTES as usize => Ok(bytes),
                    Some(Ok(bytes)) => {
                        let (script, topic) = named();
                        Err(AskError::AnswerTooLarge {
                            script,
                            topic,
                            len: bytes.len(),
                            max: MAX_PAYLOAD_BYTES,
                        })
                    }
                    Some(Err(RequestError::NoHandler)) | None => {
                        let (script, topic) = named();
                        Err(AskError::NoHandler { script, topic })
                    }
                    Some(Err(RequestError::Failed(message))) => {
                        let (script, topic) = named();
                        Err(AskError::Guest {
                            script,
                            topic,
                            message,
                        })
                    }
                }
            })
            .collect()
    }

    /// Why the script `order` has no instance.
    fn why_not_running(&self, order: RunOrder) -> &'static str {
        if self.restarts.contains_key(&order) {
            "it faulted and starts again after a backoff"
        } else if self.stale.contains(&order) {
            "its module has not loaded yet"
        } else {
            "its start failed or its module was unloaded; it waits for the module's next version"
        }
    }
}
