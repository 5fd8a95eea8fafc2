//! A change event's header as a batch carries it: [`EventHeader::BYTES`]
//! little-endian bytes each, back to back in the batch's `event-headers`,
//! so the host hands a frame of events over as one copy however many there
//! are (a list of records is lowered field by field).

use crate::ChangeKind;

/// What a batch says about one change beyond its subject and data, which
/// are ranges of the batch's `event-bytes`.
///
/// | bytes | field |
/// |---|---|
/// | 0..8 | `watch`: the watch that matched |
/// | 8..16 | `id`: the CloudEvents `id` |
/// | 16..24 | `time`: wall clock, nanoseconds since 1970-01-01 UTC |
/// | 24..32 | `virtual_time`: the game's virtual time, nanoseconds |
/// | 32..36, 36..40 | where the subject starts in `event-bytes`, its length |
/// | 40..44, 44..48 | where the data starts in `event-bytes`, its length |
/// | 48 | the kind: [`ChangeKind::code`] |
/// | 49..52 | zero |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// The watch that matched.
    pub watch: u64,
    /// The CloudEvents `id`.
    pub id: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The CloudEvents `time`, in nanoseconds since 1970-01-01 UTC.
    pub time: u64,
    /// The game's virtual time of the frame, in nanoseconds.
    pub virtual_time: u64,
    /// Where the subject starts in the batch's `event-bytes`.
    pub subject_start: u32,
    /// The subject's length in bytes.
    pub subject_len: u32,
    /// Where the data starts in the batch's `event-bytes`.
    pub data_start: u32,
    /// The data's length in bytes.
    pub data_len: u32,
}

impl EventHeader {
    /// The size of one header.
    pub const BYTES: usize = 52;

    /// Appends the header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut bytes = [0; Self::BYTES];
        bytes[0..8].copy_from_slice(&self.watch.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.id.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.time.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.virtual_time.to_le_bytes());
        bytes[32..36].copy_from_slice(&self.subject_start.to_le_bytes());
        bytes[36..40].copy_from_slice(&self.subject_len.to_le_bytes());
        bytes[40..44].copy_from_slice(&self.data_start.to_le_bytes());
        bytes[44..48].copy_from_slice(&self.data_len.to_le_bytes());
        bytes[48] = self.kind.code();
        out.extend_from_slice(&bytes);
    }

    /// The header at the start of `bytes`; `None` when they are too short
    /// or name no kind.
    pub fn read(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::BYTES] = bytes.get(..Self::BYTES)?.try_into().ok()?;
        let u64_at =
            |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let u32_at =
            |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
        Some(Self {
            watch: u64_at(0),
            id: u64_at(8),
            time: u64_at(16),
            virtual_time: u64_at(24),
            subject_start: u32_at(32),
            subject_len: u32_at(36),
            data_start: u32_at(40),
            data_len: u32_at(44),
            kind: ChangeKind::from_code(bytes[48])?,
        })
    }

    /// Every header in `headers`, in order, up to the first that cannot be
    /// read.
    pub fn all(headers: &[u8]) -> impl Iterator<Item = EventHeader> + '_ {
        headers.chunks_exact(Self::BYTES).map_while(Self::read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_as_written() {
        let kinds = [
            ChangeKind::KvSet,
            ChangeKind::KvDelete,
            ChangeKind::ComponentAdded,
            ChangeKind::ComponentChanged,
            ChangeKind::ComponentRemoved,
            ChangeKind::ResourceChanged,
        ];
        let headers: Vec<EventHeader> = (kinds.iter().enumerate())
            .map(|(n, &kind)| EventHeader {
                watch: u64::MAX - n as u64,
                id: 1 << 40 | n as u64,
                kind,
                time: 1_790_000_000_000_000_000 + n as u64,
                virtual_time: 7 + n as u64,
                subject_start: n as u32,
                subject_len: 3,
                data_start: u32::MAX - n as u32,
                data_len: 9,
            })
            .collect();
        let mut bytes = Vec::new();
        for header in &headers {
            header.write(&mut bytes);
        }
        assert_eq!(bytes.len(), headers.len() * EventHeader::BYTES);
        assert_eq!(EventHeader::all(&bytes).collect::<Vec<_>>(), headers);
        // A kind no host writes ends the list; a short tail is left out.
        bytes[EventHeader::BYTES + 48] = 200;
        assert_eq!(EventHeader::all(&bytes).count(), 1);
        assert_eq!(
            EventHeader::all(&bytes[..EventHeader::BYTES - 1]).count(),
            0
        );
    }
}
