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
//!   logs `despawned N, refused M`;
//! - `save-trap`, `save-loop`, `save-grow`, `save-recurse`: behaves, but
//!   panics, loops forever, keeps 1 GiB or recurses without end when asked
//!   to save its state for a hot reload;
//! - `busy`: spins a million times every tick, then logs `busy N` (its
//!   ticks so far);
//! - `kv-handles`: opens 100 more buckets every tick and keeps them open;
//! - `cas-handles`: makes 100 more compare-and-swap handles (each holding
//!   a 64 KiB value) every tick and keeps them;
//! - `increment-loop`: increments key `count` of bucket `counters` up to 5
//!   times every tick, stopping at a `busy` answer, and logs `acknowledged
//!   N busy B`: its increments the store acknowledged so far, and whether
//!   its last call was answered busy (and so waits to be made again).
//!
//! Any other name behaves: it logs `fine` every tick. The floods log the
//! first refusal of each tick as `refused: <error>`. A request on
//! `mischief/act` does what a tick does, and answers `null`; loaded as
//! `ask-<name>.wasm` it misbehaves as `<name>` on requests only.

use std::hint::black_box;
use std::time::Duration;

use hotwasm_sdk::ecs::raw as ecs;
use hotwasm_sdk::{Cx, Error, Script, Tick, info, kv};

#[derive(Default)]
struct Mischief {
    hoard: Vec<Vec<u8>>,
    /// Ticks of `kv-flood` and `kv-hoard`, so every tick writes new keys.
    written: u64,
    /// Ticks of `busy`.
    busy: u64,
    /// Increments of `increment-loop` the store acknowledged.
    acknowledged: u64,
    buckets: Vec<kv::store::Bucket>,
    swaps: Vec<kv::atomics::Cas>,
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

/// The name of the file this module was loaded from, without `.wasm`.
fn name() -> String {
    let path = hotwasm_sdk::module_path();
    let file = path.rsplit('/').next().unwrap_or_default();
    file.trim_end_matches(".wasm").to_owned()
}

impl Mischief {
    /// Opens 100 more buckets and keeps them.
    fn open_buckets(&mut self) {
        let opened = (0..100).map(|n| kv::store::open(&format!("open-{n}")));
        let kept = log_first_refusal(opened);
        self.buckets.extend(kept);
    }

    /// Makes 100 more compare-and-swap handles on a 64 KiB value, and keeps
    /// them.
    fn make_swaps(&mut self) {
        let Ok(bucket) = kv::store::open("swaps") else {
            return;
        };
        // Set once: a change a frame would grow what the tests collect.
        if !bucket.exists("big").unwrap_or(true) && bucket.set("big", &[1; 64 * 1024]).is_err() {
            return;
        }
        let made = (0..100).map(|_| kv::atomics::Cas::new(&bucket, "big"));
        let kept = log_first_refusal(made);
        self.swaps.extend(kept);
    }

    /// Increments `counters/count` up to 5 times, stopping at the first
    /// increment the store answers `busy` (the next tick's first one makes
    /// the same call again, for its answer), counting what it acknowledged.
    fn increment_loop(&mut self) {
        let Ok(bucket) = kv::store::open("counters") else {
            return;
        };
        let mut busy = false;
        for _ in 0..5 {
            match kv::atomics::increment(&bucket, "count", 1) {
                Ok(_) => self.acknowledged += 1,
                Err(error) => {
                    busy = Error::from(error).is_busy();
                    break;
                }
            }
        }
        info!("acknowledged {} busy {busy}", self.acknowledged);
    }

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

/// Runs every attempt, logs the first one refused and returns what the
/// others gave.
fn log_first_refusal<T, E: std::fmt::Debug>(
    attempts: impl Iterator<Item = Result<T, E>>,
) -> Vec<T> {
    let mut first = None;
    let mut given = Vec::new();
    for attempt in attempts {
        match attempt {
            Ok(value) => given.push(value),
            Err(error) => {
                first.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first {
        info!("refused: {error:?}");
    }
    given
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
    misbehave(me, &name());
    Ok(())
}

/// What a tick does, by the module's file name.
fn misbehave(me: &mut Mischief, name: &str) {
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
        "spawn-flood" => {
            log_first_refusal((0..1_000).map(|_| ecs::spawn(&[])));
        }
        "despawn-all" => despawn_all(),
        "busy" => {
            (0..1_000_000u64).for_each(|n| {
                black_box(n);
            });
            me.busy += 1;
            info!("busy {}", me.busy);
        }
        "kv-handles" => me.open_buckets(),
        "cas-handles" => me.make_swaps(),
        "increment-loop" => me.increment_loop(),
        _ => info!("fine"),
    }
}

impl Script for Mischief {
    fn init(&mut self, cx: &mut Cx<Self>) -> Result<(), Error> {
        if hotwasm_sdk::module_path().ends_with("loop-init.wasm") {
            spin();
        }
        cx.every(Duration::from_millis(100), tick)?;
        cx.on_request("mischief/act", |me, _, (): ()| {
            let name = name();
            misbehave(me, name.strip_prefix("ask-").unwrap_or(&name));
            Ok(())
        })
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        match name().as_str() {
            "save-trap" => trap_on_purpose(),
            "save-loop" => spin(),
            "save-grow" => Some(black_box(vec![1; 1 << 30])),
            "save-recurse" => Some(black_box(depth(0)).to_le_bytes().to_vec()),
            _ => None,
        }
    }
}

hotwasm_sdk::export_script!(Mischief);
