//! What one guest call may make the host do ([`HostQuotas`]), and the
//! memory and table limits of one instance ([`GuestLimits`]).

use wasmtime::ResourceLimiter;

use crate::sandbox::{GuestLimits, HostQuotas};

/// What the host has done for the current call, against [`HostQuotas`].
#[derive(Default)]
pub(crate) struct CallQuota {
    quotas: HostQuotas,
    messages: u32,
    kv_writes: u32,
    spawns: u32,
    bytes: u64,
    /// Requests refused since the last [`CallQuota::start_call`].
    pub refused: u64,
}

/// What a guest asks the host to do, for [`CallQuota::take`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum HostWork {
    Message,
    KvWrite,
    Spawn,
    /// Work only its bytes count for (an ECS write).
    Bytes,
}

impl CallQuota {
    pub fn new(quotas: HostQuotas) -> Self {
        Self {
            quotas,
            ..Self::default()
        }
    }

    /// A new call starts with nothing done.
    pub fn start_call(&mut self) -> u64 {
        let refused = self.refused;
        *self = Self::new(self.quotas);
        refused
    }

    /// Counts one piece of `work` carrying `bytes`, or refuses it (saying
    /// which quota) when that would go past a quota.
    pub fn take(&mut self, work: HostWork, bytes: usize) -> Result<(), String> {
        let mut uncounted = 0;
        let (count, max, what) = match work {
            HostWork::Message => (&mut self.messages, self.quotas.messages, "messages"),
            HostWork::KvWrite => (
                &mut self.kv_writes,
                self.quotas.kv_writes,
                "key-value writes",
            ),
            HostWork::Spawn => (&mut self.spawns, self.quotas.spawns, "spawned entities"),
            HostWork::Bytes => (&mut uncounted, u32::MAX, "requests"),
        };
        let bytes = bytes as u64;
        let refusal = if *count >= max {
            Some(format!("more than {max} {what} in one call"))
        } else if self.bytes.saturating_add(bytes) > self.quotas.bytes {
            Some(format!(
                "more than {} bytes handed to the host in one call",
                self.quotas.bytes
            ))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.refused += 1;
            return Err(refusal);
        }
        *count += 1;
        self.bytes += bytes;
        Ok(())
    }
}

/// Enforces [`GuestLimits`] on one instance's memories and tables, and
/// remembers whether it had to.
pub(crate) struct Limiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    /// A growth was refused since the last [`Limiter::take_hit`].
    hit: bool,
    /// The instance's linear memories, all together.
    memory_bytes: usize,
    /// What the host holds for the instance (the values in its
    /// compare-and-swap handles), counted against the same limit.
    host_bytes: usize,
}

impl Limiter {
    pub fn new(limits: &GuestLimits) -> Self {
        Self {
            max_memory_bytes: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            hit: false,
            memory_bytes: 0,
            host_bytes: 0,
        }
    }

    /// The instance's linear memories, in bytes, all together.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    pub fn take_hit(&mut self) -> bool {
        std::mem::take(&mut self.hit)
    }

    /// Counts `bytes` the host keeps for the instance against its memory
    /// limit, or refuses them, saying why.
    pub fn reserve_host_bytes(&mut self, bytes: usize) -> Result<(), String> {
        let total = (self.memory_bytes)
            .saturating_add(self.host_bytes)
            .saturating_add(bytes);
        if total > self.max_memory_bytes {
            return Err(format!(
                "memory limit of {} bytes reached: {} in linear memory and {} held by the host \
                 for this instance (wanted {bytes} more)",
                self.max_memory_bytes, self.memory_bytes, self.host_bytes
            ));
        }
        self.host_bytes += bytes;
        Ok(())
    }

    /// Gives back what [`Limiter::reserve_host_bytes`] counted.
    pub fn release_host_bytes(&mut self, bytes: usize) {
        self.host_bytes = self.host_bytes.saturating_sub(bytes);
    }
}

impl Limiter {
    /// Allows growing to `desired` up to `max`; past it, remembers the hit
    /// and traps the guest with a message naming the limit.
    fn grow(
        &mut self,
        desired: usize,
        max: usize,
        what: &str,
        unit: &str,
    ) -> wasmtime::Result<bool> {
        if desired > max {
            self.hit = true;
            wasmtime::bail!("{what} limit of {max} {unit} reached (wanted {desired})");
        }
        Ok(true)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let with_host = desired.saturating_add(self.host_bytes);
        let grown = self.grow(with_host, self.max_memory_bytes, "memory", "bytes")?;
        self.memory_bytes += desired.saturating_sub(current);
        Ok(grown)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(desired, self.max_table_elements, "table", "elements")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_refuse_past_their_count_or_bytes_and_reset_per_call() {
        let mut quota = CallQuota::new(HostQuotas {
            messages: 2,
            bytes: 10,
            ..HostQuotas::default()
        });
        assert!(quota.take(HostWork::Message, 4).is_ok());
        assert!(quota.take(HostWork::Message, 4).is_ok());
        let refused = quota.take(HostWork::Message, 0).unwrap_err();
        assert_eq!(refused, "more than 2 messages in one call");
        let refused = quota.take(HostWork::KvWrite, 3).unwrap_err();
        assert_eq!(refused, "more than 10 bytes handed to the host in one call");
        assert_eq!(quota.start_call(), 2);
        assert!(quota.take(HostWork::Message, 10).is_ok());
    }

    #[test]
    fn what_the_host_holds_shares_the_memory_limit() {
        let mut limiter = Limiter::new(&GuestLimits {
            max_memory_bytes: 1000,
            ..GuestLimits::default()
        });
        assert!(limiter.memory_growing(0, 600, None).unwrap());
        assert!(limiter.reserve_host_bytes(300).is_ok());
        let refused = limiter.reserve_host_bytes(200).unwrap_err();
        assert!(
            refused.starts_with(
                "memory limit of 1000 bytes reached: 600 in linear memory and 300 held by the host"
            ),
            "{refused}"
        );
        assert!(
            limiter.memory_growing(600, 800, None).is_err(),
            "the host's 300 count"
        );
        limiter.release_host_bytes(300);
        assert!(limiter.memory_growing(600, 800, None).unwrap());
    }
}
