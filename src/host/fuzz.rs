//! Property tests that throw arbitrary arguments at the host imports, the
//! way a hostile guest could: every call must return (an `Ok` or an error
//! result), never panic, and the game's world must survive.
//!
//! `PROPTEST_CASES=100000 cargo test --lib fuzz` runs them for minutes.

use proptest::prelude::*;
use wasmtime::component::Resource;

use super::bindings::hotwasm::script::{ecs, messaging, scheduler, watch};
use super::bindings::wasi::keyvalue::{atomics, batch, store};
use super::ecs::EcsView;
use super::fixture::{HEALTH, host_granted};
use super::keyvalue::KvView;
use super::messaging::MessagingView;
use super::scheduler::SchedulerView;
use super::watch::WatchView;
use crate::capabilities::{Capabilities, Grant};

/// Text a guest might send: short strings, path-like strings, type paths,
/// JSON-ish text, and anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z./_:-]{0,12}",
        Just(HEALTH.to_owned()),
        Just("..".to_owned()),
        "\\{\"hp\":[0-9-]{0,12}\\}",
        any::<String>(),
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(br#"{"hp":7,"name":"b"}"#.to_vec()),
    ]
}

/// Everything, nothing, or some of each kind of capability.
fn grant() -> impl Strategy<Value = Grant> {
    let some = "component.read bevy_hotwasm::host::fixture::*\ncomponent.write a\n\
                resource.read *\nspawn bevy_hotwasm::*\nentities spawned\n\
                despawn own marked:bevy_hotwasm::host::fixture::*\nkv.read a b/c*\n\
                kv.write a\nkv.atomics a/b\nkv.watch a/\nmessages.send a*\n\
                messages.subscribe a\ntasks 1";
    let some = Capabilities::parse(some).expect("a manifest");
    prop_oneof![
        Just(Grant::everything()),
        Just(Grant::as_requested(Capabilities::none())),
        Just(Grant::as_requested(some)),
    ]
}

proptest! {
    #[test]
    fn scheduler_watch_and_messaging_take_anything(
        delay in any::<u64>(), time in any::<u64>(), first in proptest::option::of(any::<u64>()),
        id in any::<u64>(), topic in text(), payload in bytes(), bucket in text(), key in text(),
        skip in any::<bool>(), flags in any::<u8>(), grant in grant(),
    ) {
        let mut host = host_granted(grant);
        let mut scheduler_view = SchedulerView::of(&mut host);
        let _ = scheduler::Host::after(&mut scheduler_view, delay);
        let _ = scheduler::Host::at(&mut scheduler_view, time);
        let _ = scheduler::Host::every(&mut scheduler_view, delay, first);
        let _ = scheduler::Host::cancel(&mut scheduler_view, id);
        let _ = scheduler::Host::every_frame(&mut scheduler_view, skip);
        let mut messaging_view = MessagingView::of(&mut host);
        let _ = messaging::Host::send(&mut messaging_view, topic.clone(), payload);
        let _ = messaging::Host::subscribe(&mut messaging_view, topic.clone());
        let _ = messaging::Host::unsubscribe(&mut messaging_view, topic.clone());
        let mut watch_view = WatchView::of(&mut host);
        let _ = watch::Host::watch_key(&mut watch_view, bucket.clone(), key.clone(), skip);
        let _ = watch::Host::watch_prefix(&mut watch_view, bucket, key, skip);
        let mut changes = watch::ComponentChanges::empty();
        for (bit, flag) in [
            watch::ComponentChanges::ADDED,
            watch::ComponentChanges::CHANGED,
            watch::ComponentChanges::REMOVED,
        ]
        .into_iter()
        .enumerate()
        {
            if flags & (1 << bit) != 0 {
                changes |= flag;
            }
        }
        let _ = watch::Host::watch_component(&mut watch_view, topic.clone(), changes);
        let _ = watch::Host::watch_resource(&mut watch_view, topic);
        let _ = watch::Host::unwatch(&mut watch_view, id);
    }

    #[test]
    fn keyvalue_takes_anything(
        bucket in text(), key in text(), value in bytes(), delta in any::<i64>(),
        cursor in proptest::option::of(text()), keys in proptest::collection::vec(text(), 0..4),
        grant in grant(),
    ) {
        let mut host = host_granted(grant);
        let mut host = KvView::of(&mut host);
        let Ok(handle) = store::Host::open(&mut host, bucket) else { return Ok(()) };
        let again = || Resource::<super::keyvalue::KvBucket>::new_borrow(handle.rep());
        let _ = store::HostBucket::set(&mut host, again(), key.clone(), value.clone());
        let _ = store::HostBucket::get(&mut host, again(), key.clone());
        let _ = store::HostBucket::exists(&mut host, again(), key.clone());
        let _ = store::HostBucket::list_keys(&mut host, again(), cursor);
        let _ = atomics::Host::increment(&mut host, again(), key.clone(), delta);
        if let Ok(cas) = atomics::HostCas::new(&mut host, again(), key.clone()) {
            let _ = atomics::Host::swap(&mut host, cas, value.clone());
        }
        let pairs = keys.iter().map(|key| (key.clone(), value.clone())).collect();
        let _ = batch::Host::set_many(&mut host, again(), pairs);
        let _ = batch::Host::get_many(&mut host, again(), keys.clone());
        let _ = batch::Host::delete_many(&mut host, again(), keys);
        let _ = store::HostBucket::delete(&mut host, again(), key);
        prop_assert!(store::HostBucket::drop(&mut host, handle).is_ok());
    }

    #[test]
    fn ecs_takes_anything(
        entity in prop_oneof![any::<u64>(), Just(0u64), Just(1u64 << 32)], type_path in text(),
        json in bytes(), field in text(), cursor in any::<u64>(),
        components in proptest::collection::vec((text(), bytes()), 0..3),
        changed in proptest::collection::vec((0u32..4, bytes()), 0..3), grant in grant(),
    ) {
        let mut host = host_granted(grant);
        let _ = ecs::Host::prefetch(
            &mut EcsView::of(&mut host),
            vec![HEALTH.to_owned(), type_path.clone()],
        );
        let _ = host.read_prefetched();
        let _ = host.write_prefetched(changed);
        let mut ecs_view = EcsView::of(&mut host);
        let _ = ecs::Host::get_component(&mut ecs_view, entity, type_path.clone());
        let _ = ecs::Host::set_component(&mut ecs_view, entity, type_path.clone(), json.clone());
        let _ = ecs::Host::get_resource(&mut ecs_view, type_path.clone());
        let _ = ecs::Host::set_resource(&mut ecs_view, type_path.clone(), json);
        let _ = ecs::Host::spawn(&mut ecs_view, components);
        let _ = ecs::Host::query(&mut ecs_view, vec![type_path.clone()], vec![HEALTH.to_owned()], cursor);
        let _ = ecs::Host::query_field(&mut ecs_view, type_path, field);
        let _ = ecs::Host::despawn(&mut ecs_view, entity);
        prop_assert!(host.world.is_some());
    }
}
