//! What a failure does to a script: it is reported (a [`ModuleFailed`]
//! message and a warning), and a fault also ends the instance, which
//! restarts after a backoff or, after too many recent faults, is
//! quarantined ([`ScriptQuarantined`]).

use bevy::prelude::*;

use super::{FrameContext, RunOrder, TrackedScript};
use crate::instance::CallError;
use crate::messages::{FailureStage, ModuleFailed, ScriptQuarantined, ScriptRef};
use crate::sandbox::FaultKind;

/// Writes a failure as a message and a warning.
pub(super) fn report(world: &mut World, failure: ModuleFailed) {
    warn!("{failure}");
    world.write_message(failure);
}

/// Records and reports that `script_ref`'s generation failed on its script.
pub(super) fn fail(
    frame: &mut FrameContext,
    script_ref: &ScriptRef,
    stage: FailureStage,
    error: CallError,
) {
    let failure = ModuleFailed::of_script(script_ref, stage, error.cause, error.fault);
    if let Some(status) = frame.script_status(RunOrder(script_ref.entity)) {
        status.last_failure = Some(failure.clone());
    }
    report(&mut frame.world, failure);
}

/// The instance of `script_ref`'s generation faulted (and is gone):
/// reports it, then returns when to restart it (virtual time, ns) after a
/// backoff, or quarantines the script after too many recent faults.
#[must_use = "the restart must be scheduled"]
pub(super) fn faulted(
    frame: &mut FrameContext,
    script: &mut TrackedScript,
    script_ref: &ScriptRef,
    stage: FailureStage,
    error: CallError,
) -> Option<u64> {
    script.instance = None;
    script.this_frame.faults += 1;
    let fault = error.fault.clone();
    if let Some(status) = frame.script_status(RunOrder(script_ref.entity)) {
        status.generation = None;
        status.stats.faults += 1;
        status.last_fault.clone_from(&fault);
    }
    fail(frame, script_ref, stage, error);
    let (now, policy) = (frame.now, frame.policy);
    let window = policy.window.as_nanos() as u64;
    script.recent_faults.push_back(now);
    while script
        .recent_faults
        .front()
        .is_some_and(|&at| at.saturating_add(window) < now)
    {
        script.recent_faults.pop_front();
    }
    let recent = script.recent_faults.len() as u32;
    if recent < policy.max_faults {
        return Some(now + policy.backoff(recent).as_nanos() as u64);
    }
    if let Some(status) = frame.script_status(RunOrder(script_ref.entity)) {
        status.quarantined = true;
    }
    let quarantined = ScriptQuarantined {
        script: script_ref.clone(),
        fault: fault.unwrap_or(FaultKind::OutOfCpu),
    };
    warn!(
        "quarantined {script_ref} after {recent} faults; the last: {}",
        quarantined.fault
    );
    frame.world.write_message(quarantined);
    None
}
