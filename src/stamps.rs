//! Event stamps: the CloudEvents `id` and clocks that every change event
//! carries, key-value and component alike.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bevy::prelude::Resource;
use hotwasm_events::{ChangeKind, CloudEvent};

/// What every CloudEvent of one change shares, whoever gets it: its `id`,
/// its `time` and its `virtualtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventStamp {
    /// The CloudEvents `id`: one counter for key-value and component
    /// changes, starting at a random number in each run, so unique across
    /// runs over one store and across processes.
    pub id: u64,
    /// The wall clock of the frame that published the change.
    pub time: SystemTime,
    /// The game's virtual time of that frame.
    pub virtual_time: Duration,
}

impl EventStamp {
    /// The stamp of a change not published yet.
    pub(crate) const UNPUBLISHED: Self = Self {
        id: 0,
        time: SystemTime::UNIX_EPOCH,
        virtual_time: Duration::ZERO,
    };

    /// The change's CloudEvent.
    pub(crate) fn cloud_event<'a>(
        &self,
        source: Cow<'a, str>,
        kind: ChangeKind,
        subject: Cow<'a, str>,
        data: &'a [u8],
    ) -> CloudEvent<'a> {
        CloudEvent {
            id: self.id,
            source,
            kind,
            subject,
            time: self.time,
            virtual_time: self.virtual_time,
            data,
        }
    }
}

/// The clocks of the frame that publishes changes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameClocks {
    time: SystemTime,
    virtual_time: Duration,
}

impl FrameClocks {
    /// The wall clock now, and the game's virtual time (zero without one).
    pub(crate) fn now(virtual_time: Option<Duration>) -> Self {
        Self {
            time: SystemTime::now(),
            virtual_time: virtual_time.unwrap_or_default(),
        }
    }
}

/// The CloudEvents ids of change events, key-value and component alike: a
/// resource. The first is a random number, so ids stay unique across runs
/// over one store and across processes (two runs' ranges would overlap
/// only after about 2^61 events).
#[derive(Resource)]
pub(crate) struct EventIds(AtomicU64);

impl Default for EventIds {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // std's RandomState is seeded from the OS's randomness once per
        // process; the time and the process id set runs apart further.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        let since_1970 = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        hasher.write_u128(since_1970.as_nanos());
        hasher.write_u32(std::process::id());
        // Room to count up without wrapping.
        Self(AtomicU64::new(hasher.finish() >> 2))
    }
}

impl EventIds {
    /// The next change's stamp: the next id, at the frame's `clocks`.
    pub(crate) fn stamp(&self, clocks: FrameClocks) -> EventStamp {
        EventStamp {
            id: self.0.fetch_add(1, Ordering::Relaxed) + 1,
            time: clocks.time,
            virtual_time: clocks.virtual_time,
        }
    }
}
