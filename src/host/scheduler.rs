//! `hotwasm:script/scheduler`: an instance's tasks, in virtual time.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bevy::log::warn;
use wasmtime::component::HasData;

use super::access::Access;
use super::bindings::hotwasm::script::scheduler::{Error, Host};
use super::bindings::hotwasm::script::types::TaskDue;
use super::details::TaskDetails;
use super::{HostState, InstanceIdentity};

/// The most tasks one instance may have pending at once.
pub const MAX_TASKS: u32 = 1024;

/// An instance's pending tasks, ordered by due time, then by creation.
///
/// Times are nanoseconds of Bevy virtual time.
#[derive(Default)]
pub(crate) struct TaskQueue {
    last_id: u64,
    tasks: HashMap<u64, Task>,
    /// (due time, id): ids grow with creation, so ties run oldest first.
    due: BTreeSet<(u64, u64)>,
}

struct Task {
    due: u64,
    interval: Option<u64>,
}

impl TaskQueue {
    fn schedule(&mut self, due: u64, interval: Option<u64>) -> Result<u64, Error> {
        if interval == Some(0) {
            return Err(Error::ZeroInterval);
        }
        if self.tasks.len() >= MAX_TASKS as usize {
            return Err(Error::TooManyTasks(MAX_TASKS));
        }
        self.last_id += 1;
        let id = self.last_id;
        self.tasks.insert(id, Task { due, interval });
        self.due.insert((due, id));
        Ok(id)
    }

    fn cancel(&mut self, id: u64) -> Result<(), Error> {
        let task = self.tasks.remove(&id).ok_or(Error::UnknownTask(id))?;
        self.due.remove(&(task.due, id));
        Ok(())
    }

    fn cancel_all(&mut self) {
        self.tasks.clear();
        self.due.clear();
    }

    /// Changes when a task is added, removed or moved: the last id, the
    /// count and the soonest.
    pub fn stamp(&self) -> (u64, usize, Option<(u64, u64)>) {
        (self.last_id, self.tasks.len(), self.due.first().copied())
    }

    /// Every pending task, soonest first.
    pub fn details(&self) -> Vec<TaskDetails> {
        self.due
            .iter()
            .map(|&(due, id)| TaskDetails {
                id,
                due: Duration::from_nanos(due),
                interval: self
                    .tasks
                    .get(&id)
                    .and_then(|task| task.interval)
                    .map(Duration::from_nanos),
            })
            .collect()
    }

    /// Whether any task is due at `now`.
    pub fn has_due(&self, now: u64) -> bool {
        self.due.first().is_some_and(|&(due, _)| due <= now)
    }

    /// Moves every task due at `now` into `out`, in order. A repeating task
    /// comes out once, with the ticks it skipped, and is rescheduled on its
    /// grid to the first tick after `now`.
    pub fn take_due(&mut self, now: u64, out: &mut Vec<TaskDue>) {
        while let Some(&(due, id)) = self.due.first() {
            if due > now {
                break;
            }
            self.due.pop_first();
            let Some(interval) = self.tasks.get(&id).and_then(|task| task.interval) else {
                self.tasks.remove(&id);
                out.push(TaskDue { id, missed: 0 });
                continue;
            };
            let missed = (now - due) / interval;
            let next = due.saturating_add(interval.saturating_mul(missed + 1));
            if let Some(task) = self.tasks.get_mut(&id) {
                task.due = next;
            }
            self.due.insert((next, id));
            out.push(TaskDue {
                id,
                missed: u32::try_from(missed).unwrap_or(u32::MAX),
            });
        }
    }
}

/// The marker `scheduler` is linked with: its host is a [`SchedulerView`].
pub(super) struct Scheduler;

impl HasData for Scheduler {
    type Data<'a> = SchedulerView<'a>;
}

/// What `scheduler` sees of an instance's state: the time, its tasks, its
/// per-frame hook, what it was granted, and who it is (for the warning at
/// the cap of tasks).
pub(crate) struct SchedulerView<'a> {
    /// The current frame's virtual time, in nanoseconds.
    now: u64,
    tasks: &'a mut TaskQueue,
    every_frame: &'a mut bool,
    access: &'a mut Access,
    /// Whether the cap of pending tasks was already warned about.
    warned_task_cap: &'a mut bool,
    identity: &'a InstanceIdentity,
}

impl SchedulerView<'_> {
    pub fn of(state: &mut HostState) -> SchedulerView<'_> {
        SchedulerView {
            now: state.now,
            tasks: &mut state.tasks,
            every_frame: &mut state.every_frame,
            access: &mut state.access,
            warned_task_cap: &mut state.warned_task_cap,
            identity: &state.identity,
        }
    }

    fn schedule(&mut self, due: u64, interval: Option<u64>) -> Result<u64, Error> {
        (self.access)
            .check_task(self.tasks.tasks.len())
            .map_err(Error::Denied)?;
        let result = self.tasks.schedule(due, interval);
        if let Err(Error::TooManyTasks(cap)) = result
            && !std::mem::replace(self.warned_task_cap, true)
        {
            let InstanceIdentity {
                entity,
                module_path,
                ..
            } = self.identity;
            warn!(
                "[{module_path}] on {entity} reached the cap of {cap} pending tasks; further tasks are refused"
            );
        }
        result
    }
}

impl Host for SchedulerView<'_> {
    fn now(&mut self) -> u64 {
        self.now
    }

    fn after(&mut self, delay: u64) -> Result<u64, Error> {
        self.schedule(self.now.saturating_add(delay), None)
    }

    fn at(&mut self, time: u64) -> Result<u64, Error> {
        self.schedule(time, None)
    }

    fn every(&mut self, interval: u64, first_delay: Option<u64>) -> Result<u64, Error> {
        let first = self.now.saturating_add(first_delay.unwrap_or(interval));
        self.schedule(first, Some(interval))
    }

    fn cancel(&mut self, id: u64) -> Result<(), Error> {
        self.tasks.cancel(id)
    }

    fn cancel_all(&mut self) {
        self.tasks.cancel_all();
    }

    fn every_frame(&mut self, on: bool) -> Result<(), Error> {
        if on {
            self.access.check_frame().map_err(Error::Denied)?;
        }
        *self.every_frame = on;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn due(queue: &mut TaskQueue, now: u64) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        queue.take_due(now, &mut out);
        out.into_iter().map(|task| (task.id, task.missed)).collect()
    }

    #[test]
    fn a_one_shot_task_runs_once_when_due() {
        let mut queue = TaskQueue::default();
        let id = queue.schedule(250 * MS, None).unwrap();
        assert!(!queue.has_due(200 * MS));
        assert_eq!(due(&mut queue, 200 * MS), []);
        assert!(queue.has_due(300 * MS));
        assert_eq!(due(&mut queue, 300 * MS), [(id, 0)]);
        assert_eq!(due(&mut queue, 400 * MS), []);
        assert!(matches!(queue.cancel(id), Err(Error::UnknownTask(unknown)) if unknown == id));
    }

    #[test]
    fn a_repeating_task_runs_once_per_frame_and_counts_skipped_ticks() {
        let mut queue = TaskQueue::default();
        let id = queue.schedule(100 * MS, Some(100 * MS)).unwrap();
        assert_eq!(due(&mut queue, 100 * MS), [(id, 0)]);
        // A long frame: ticks at 200, 300 and 400 fall in it; one runs.
        assert_eq!(due(&mut queue, 450 * MS), [(id, 2)]);
        // The grid holds: the next tick is 500, not 550.
        assert_eq!(due(&mut queue, 499 * MS), []);
        assert_eq!(due(&mut queue, 500 * MS), [(id, 0)]);
        queue.cancel(id).unwrap();
        assert_eq!(due(&mut queue, 10_000 * MS), []);
    }

    #[test]
    fn tasks_due_together_run_by_due_time_then_creation() {
        let mut queue = TaskQueue::default();
        let late = queue.schedule(300 * MS, None).unwrap();
        let first = queue.schedule(100 * MS, None).unwrap();
        let second = queue.schedule(100 * MS, None).unwrap();
        assert_eq!(
            due(&mut queue, 1_000 * MS),
            [(first, 0), (second, 0), (late, 0)]
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let mut queue = TaskQueue::default();
        assert!(matches!(
            queue.schedule(0, Some(0)),
            Err(Error::ZeroInterval)
        ));
        assert!(matches!(queue.cancel(42), Err(Error::UnknownTask(42))));
        for _ in 0..MAX_TASKS {
            queue.schedule(MS, None).unwrap();
        }
        assert!(matches!(
            queue.schedule(MS, None),
            Err(Error::TooManyTasks(MAX_TASKS))
        ));
        queue.cancel_all();
        assert!(queue.schedule(MS, None).is_ok());
    }
}
