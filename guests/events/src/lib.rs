//! The CloudEvents 1.0 form of a change a watch reports, shared by the
//! bevy_hotwasm host and its guest SDK, so the event a guest handles, the
//! game's `KvChanged` and `WatchedChange` messages and their JSON say the
//! same thing in the same words.
//!
//! | attribute | value |
//! |---|---|
//! | `specversion` | `1.0` |
//! | `id` | a number in decimal: one counter per run for every change, starting at a random number |
//! | `source` | `/kv/<bucket>`, `/ecs/component/<type path>` or `/ecs/resource/<type path>`, percent-encoded as a URI path segment |
//! | `type` | [`ChangeKind::event_type`], e.g. `dev.hotwasm.kv.set` |
//! | `subject` | the key, or the entity's bits in decimal; none for a resource |
//! | `time` | RFC 3339, UTC, the wall clock of the frame that published the change |
//! | `datacontenttype` | [`ChangeKind::content_type`]: none for a delete or a removal |
//! | `data` / `data_base64` | JSON values as `data`, key-value bytes as `data_base64` |
//! | `virtualtime` (extension) | the game's virtual time of that frame, in seconds, as a string |

use std::borrow::Cow;
use std::fmt::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

mod header;

pub use header::EventHeader;

/// What a change event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A key-value pair was set; the data is the new value.
    KvSet,
    /// A key was deleted; no data.
    KvDelete,
    /// A component was added to an entity; the data is its JSON.
    ComponentAdded,
    /// A component changed; the data is its JSON.
    ComponentChanged,
    /// A component was removed, or its entity despawned; no data.
    ComponentRemoved,
    /// A resource was inserted or changed; the data is its JSON.
    ResourceChanged,
}

impl ChangeKind {
    /// Every kind, in the order of its [`code`](Self::code).
    const ALL: [ChangeKind; 6] = [
        Self::KvSet,
        Self::KvDelete,
        Self::ComponentAdded,
        Self::ComponentChanged,
        Self::ComponentRemoved,
        Self::ResourceChanged,
    ];

    /// Its number in an [`EventHeader`]: 0 for `KvSet` to 5 for
    /// `ResourceChanged`, in the order above.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind numbered `code`, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The CloudEvents `type`, e.g. `dev.hotwasm.kv.set`.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::KvSet => "dev.hotwasm.kv.set",
            Self::KvDelete => "dev.hotwasm.kv.delete",
            Self::ComponentAdded => "dev.hotwasm.component.added",
            Self::ComponentChanged => "dev.hotwasm.component.changed",
            Self::ComponentRemoved => "dev.hotwasm.component.removed",
            Self::ResourceChanged => "dev.hotwasm.resource.changed",
        }
    }

    /// The CloudEvents `datacontenttype`: the store's bytes are opaque, ECS
    /// values are JSON, and an event without data has none.
    pub fn content_type(self) -> Option<&'static str> {
        match self {
            Self::KvDelete | Self::ComponentRemoved => None,
            Self::KvSet => Some("application/octet-stream"),
            Self::ComponentAdded | Self::ComponentChanged | Self::ResourceChanged => {
                Some("application/json")
            }
        }
    }
}

/// Where a change happened; its [`Display`](fmt::Display) is the
/// CloudEvents `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source<'a> {
    /// A key-value bucket: `/kv/<bucket>`.
    Bucket(&'a str),
    /// A component type: `/ecs/component/<type path>`.
    Component(&'a str),
    /// A resource type: `/ecs/resource/<type path>`.
    Resource(&'a str),
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, name) = match self {
            Self::Bucket(bucket) => ("/kv/", bucket),
            Self::Component(type_path) => ("/ecs/component/", type_path),
            Self::Resource(type_path) => ("/ecs/resource/", type_path),
        };
        f.write_str(prefix)?;
        write_uri_segment(f, name)
    }
}

/// `text` as one segment of a URI path (RFC 3986 `pchar`s): what is not
/// unreserved, a sub-delimiter, `:` or `@` is percent-encoded, so a generic
/// type's `/ecs/component/game::Wrapper%3Cu32%3E` is a URI reference.
fn write_uri_segment(out: &mut impl Write, text: &str) -> fmt::Result {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
            out.write_char(char::from(byte))?;
        } else {
            write!(out, "%{byte:02X}")?;
        }
    }
    Ok(())
}

/// One change as a CloudEvent: what the guest SDK's `Event`, the host's
/// `KvChanged::cloud_event` and `WatchedChange::cloud_event` give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEvent<'a> {
    /// `id`.
    pub id: u64,
    /// `source`, as [`Source`] writes it.
    pub source: Cow<'a, str>,
    /// `type` and `datacontenttype` follow from it.
    pub kind: ChangeKind,
    /// `subject`; empty for none (a resource).
    pub subject: Cow<'a, str>,
    /// `time`: the wall clock of the frame that published the change.
    pub time: SystemTime,
    /// The `virtualtime` extension: the game's virtual time of that frame.
    pub virtual_time: Duration,
    /// The value: key-value bytes or JSON; ignored for a delete or a removal.
    pub data: &'a [u8],
}

impl CloudEvent<'_> {
    /// The event in the CloudEvents JSON format, as a JSON object (to add
    /// extension attributes of your own before writing it).
    pub fn to_value(&self) -> Value {
        let mut event = Map::new();
        let mut put = |name: &str, value: String| {
            event.insert(name.to_owned(), Value::String(value));
        };
        put("specversion", "1.0".to_owned());
        put("id", self.id.to_string());
        put("source", self.source.clone().into_owned());
        put("type", self.kind.event_type().to_owned());
        if !self.subject.is_empty() {
            put("subject", self.subject.clone().into_owned());
        }
        put("time", rfc3339(self.time));
        put("virtualtime", seconds(self.virtual_time));
        if let Some(content_type) = self.kind.content_type() {
            let json = (content_type == "application/json")
                .then(|| serde_json::from_slice::<Value>(self.data).ok())
                .flatten();
            match json {
                Some(json) => {
                    put("datacontenttype", content_type.to_owned());
                    event.insert("data".to_owned(), json);
                }
                // Bytes, or a value that is not the JSON it should be: as
                // what it is.
                None => {
                    put("datacontenttype", "application/octet-stream".to_owned());
                    put("data_base64", base64(self.data));
                }
            }
        }
        Value::Object(event)
    }

    /// The event in the CloudEvents JSON format.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }
}

/// `time` as RFC 3339 in UTC with nanoseconds, e.g.
/// `2026-12-03T17:52:13.000000001Z`; times before 1970 as 1970.
pub fn rfc3339(time: SystemTime) -> String {
    let since_1970 = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_1970.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since_1970.subsec_nanos()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A duration in seconds with nanoseconds, e.g. `12.500000000`.
fn seconds(duration: Duration) -> String {
    format!("{}.{:09}", duration.as_secs(), duration.subsec_nanos())
}

/// Standard base64 with padding (RFC 4648), as CloudEvents' `data_base64`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk.iter().enumerate().fold(0u32, |group, (at, &byte)| {
            group | u32::from(byte) << (16 - 8 * at)
        });
        for at in 0..4 {
            if at <= chunk.len() {
                out.push(char::from(ALPHABET[(group >> (18 - 6 * at) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn dates_land_on_the_right_day() {
        let at = |seconds: u64, nanos: u32| rfc3339(UNIX_EPOCH + Duration::new(seconds, nanos));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 (a leap day in a century year) and 2100-03-01 (after a
        // century year that is not a leap year).
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000000Z");
        assert_eq!(at(1_796_320_333, 0), "2026-12-03T17:52:13.000000000Z");
        let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before_1970), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn sources_are_uri_path_segments() {
        assert_eq!(Source::Bucket("scores").to_string(), "/kv/scores");
        assert_eq!(
            Source::Component("game::Wrapper<u32>").to_string(),
            "/ecs/component/game::Wrapper%3Cu32%3E"
        );
        assert_eq!(
            Source::Resource("a b/ü").to_string(),
            "/ecs/resource/a%20b%2F%C3%BC"
        );
    }
}
