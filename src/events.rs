//! Change events in CloudEvents 1.0 form, and their JSON rendering
//! (structured mode), for logs and debug panels.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::kv::KvChanged;

/// The CloudEvents `type` of a key-value set.
pub const KV_SET: &str = "dev.hotwasm.kv.set";
/// The CloudEvents `type` of a key-value delete.
pub const KV_DELETE: &str = "dev.hotwasm.kv.delete";

/// The CloudEvents `source` of a bucket's changes.
pub fn kv_source(bucket: &str) -> String {
    format!("/kv/{bucket}")
}

/// A change as a CloudEvents 1.0 event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEvent {
    /// Unique per `source`.
    pub id: String,
    /// Where it happened, e.g. `/kv/scores`.
    pub source: String,
    /// What happened, reverse-DNS, e.g. `dev.hotwasm.kv.set`.
    pub ty: String,
    /// What it happened to: the key, or the entity.
    pub subject: Option<String>,
    /// When, by the wall clock.
    pub time: SystemTime,
    /// The media type of `data`.
    pub datacontenttype: String,
    /// The new value (empty for a delete).
    pub data: Vec<u8>,
}

impl CloudEvent {
    /// The event for a key-value change with the given `id`.
    pub fn from_kv_change(change: &KvChanged, id: u64, time: SystemTime) -> Self {
        Self {
            id: id.to_string(),
            source: kv_source(&change.bucket),
            ty: if change.value.is_some() {
                KV_SET
            } else {
                KV_DELETE
            }
            .to_owned(),
            subject: Some(change.key.clone()),
            time,
            datacontenttype: "application/octet-stream".to_owned(),
            data: change.value.clone().unwrap_or_default(),
        }
    }

    /// The event in CloudEvents JSON structured mode (`specversion` "1.0").
    /// JSON data is embedded as `data`; other data as `data_base64`.
    pub fn to_json(&self) -> String {
        let mut event = Map::new();
        event.insert("specversion".into(), json!("1.0"));
        event.insert("id".into(), json!(self.id));
        event.insert("source".into(), json!(self.source));
        event.insert("type".into(), json!(self.ty));
        if let Some(subject) = &self.subject {
            event.insert("subject".into(), json!(subject));
        }
        event.insert("time".into(), json!(rfc3339(self.time)));
        event.insert("datacontenttype".into(), json!(self.datacontenttype));
        let json_data = (self.datacontenttype == "application/json")
            .then(|| serde_json::from_slice::<Value>(&self.data).ok())
            .flatten();
        match json_data {
            Some(data) => event.insert("data".into(), data),
            None => event.insert("data_base64".into(), json!(base64(&self.data))),
        };
        Value::Object(event).to_string()
    }
}

/// `time` as RFC 3339 in UTC, to the millisecond.
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
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
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since_epoch.subsec_millis()
    )
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::kv::KvOrigin;

    #[test]
    fn a_kv_change_renders_as_structured_cloudevents_json() {
        let change = KvChanged {
            bucket: "scores".into(),
            key: "player/1".into(),
            value: Some(b"10".to_vec()),
            origin: KvOrigin::Host,
        };
        let time = UNIX_EPOCH + Duration::from_millis(1_763_700_000_123);
        let json: Value =
            serde_json::from_str(&CloudEvent::from_kv_change(&change, 7, time).to_json()).unwrap();
        assert_eq!(
            json,
            json!({
                "specversion": "1.0",
                "id": "7",
                "source": "/kv/scores",
                "type": "dev.hotwasm.kv.set",
                "subject": "player/1",
                "time": "2025-11-21T04:40:00.123Z",
                "datacontenttype": "application/octet-stream",
                "data_base64": "MTA=",
            })
        );
    }

    #[test]
    fn json_data_is_embedded() {
        let event = CloudEvent {
            id: "1".into(),
            source: "/ecs/component/game::Health".into(),
            ty: "dev.hotwasm.component.changed".into(),
            subject: Some("4294967295".into()),
            time: UNIX_EPOCH,
            datacontenttype: "application/json".into(),
            data: br#"{"hp":3}"#.to_vec(),
        };
        let json: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(json["data"], json!({"hp": 3}));
        assert_eq!(json["time"], json!("1970-01-01T00:00:00.000Z"));
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
