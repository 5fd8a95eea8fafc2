//! A badly behaved script, for the sandbox tests: what it does wrong
//! depends on the name of the file it was loaded from (copy it to
//! `loop-init.wasm`, `grow.wasm`, ...):
//!
//! - `loop-init`: loops forever in `init`;
//! - `loop-handler`: loops forever in its first tick;
//! - `grow`: keeps 1 MiB more memory every tick;
//! - `recurse`: recurses without end in a tick;
//! - `trap`: panics (a trap) in every tick;
//! - `log-flood`: logs 10 000 lines every tick;
//! - `message-flood`: sends 10 000 messages every tick;
//! - `kv-flood`: sets 2 000 new keys of bucket `flood` every tick;
//! - `kv-hoard`: sets 8 new 64 KiB values of bucket `hoard` every tick;
//! - `spawn-flood`: spawns 1 000 entities every tick;
//! - `despawn-all`: despawns every entity it can find, every tick, and
//!   logs `despawned N, refused M`.
//!
//! Any other name behaves: it logs `fine` every tick. The floods log the
//! first refusal of each tick as `refused: <error>`.

use std::hint::black_box;
use std::time::Duration;

use hotwasm_sdk::ecs::raw as ecs;
use hotwasm_sdk::{Cx, Error, Script, Tick, info};

#[derive(Default)]
struct Mischief {
    hoard: Vec<Vec<u8>>,
    /// Ticks of `kv-flood` and `kv-hoard`, so every tick writes new keys.
    written: u64,
}

/// Despawns every entity a query without filters returns (its own
/// included), and logs how many went and how many the host refused.
fn despawn_all() {
    let mut entities = Vec::new();
    let mut cursor = Some(0);
    while let Some(from) = cursor {
        let Ok(page) = ecs::query(&[], &[], from) else {
            break;
        };
        entities.extend(page.rows.iter().map(|row| row.entity));
        cursor = page.next;
    }
    let (mut despawned, mut refused) = (0, 0);
    for entity in entities {
        match ecs::despawn(entity) {
            Ok(()) => despawned += 1,
            Err(_) => refused += 1,
        }
    }
    info!("despawned {despawned}, refused {refused}");
}

impl Mischief {
    /// Sets `count` keys of `bucket` never written before to `value`.
    fn write_new_keys(&mut self, bucket: &str, count: u32, value: &[u8]) {
        let Ok(bucket) = hotwasm_sdk::kv::store::open(bucket) else {
            return;
        };
        self.written += 1;
        let written = self.written;
        log_first_refusal((0..count).map(|n| bucket.set(&format!("{written}/{n}"), value)));
    }
}

/// Runs every attempt and logs the first one refused.
fn log_first_refusal<T, E: std::fmt::Debug>(attempts: impl Iterator<Item = Result<T, E>>) {
    let mut first = None;
    for attempt in attempts {
        if let Err(error) = attempt {
            first.get_or_insert(error);
        }
    }
    if let Some(error) = first {
        info!("refused: {error:?}");
    }
}

fn depth(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    // Not a tail call, and not foldable: every level keeps a frame.
    black_box(depth(black_box(n + 1))) + 1
}

/// Kept out of line so that a fault's backtrace names it.
#[inline(never)]
fn trap_on_purpose() -> ! {
    panic!("trap on purpose")
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn tick(me: &mut Mischief, _: &mut Cx<Mischief>, _: Tick) -> Result<(), Error> {
    let path = hotwasm_sdk::module_path();
    let name = path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".wasm");
    match name {
        "loop-handler" => spin(),
        "grow" => me.hoard.push(black_box(vec![1; 1024 * 1024])),
        "recurse" => {
            black_box(depth(0));
        }
        "trap" => trap_on_purpose(),
        "log-flood" => (0..10_000).for_each(|n| info!("flood {n}")),
        "message-flood" => (0..10_000).for_each(|_| {
            let _ = hotwasm_sdk::send("flood", b"x");
        }),
        "kv-flood" => me.write_new_keys("flood", 2_000, b"x"),
        "kv-hoard" => me.write_new_keys("hoard", 8, &[7; 64 * 1024]),
        "spawn-flood" => log_first_refusal((0..1_000).map(|_| ecs::spawn(&[]))),
        "despawn-all" => despawn_all(),
        _ => info!("fine"),
    }
    Ok(())
}

impl Script for Mischief {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        if hotwasm_sdk::module_path().ends_with("loop-init.wasm") {
            spin();
        }
        cx.every(Duration::from_millis(100), tick)?;
        Ok(())
    }
}

hotwasm_sdk::export_script!(Mischief);
