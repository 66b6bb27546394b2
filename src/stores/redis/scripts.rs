//! The Lua scripts that make each lock operation one atomic step in Redis.
//!
//! The lock key holds the raw owner string, exactly as daprd writes it (`SET key owner NX EX`),
//! so daprd and dlockd fleets share locks. What dlock adds lives beside it, under keys no lock
//! key can take (lock keys start with `lock||`): a fencing counter shared by many keys (see
//! `keys.rs`; kept, so tokens keep rising across holders), and `dlock||token||<key>`,
//! `<owner>|<token>` of the current holder with the lock's own expiry, deleted on release.
//! Releases publish on the lock's own channel, the release signal for waiters on every sidecar
//! (see `signal.rs`).
//!
//! A token is never below the server's clock in microseconds (`TIME`): the counter is lifted
//! to it before counting on. A replica promoted after its master died may lack the master's
//! last increments, but its clock has moved on by the time of the failover, so its tokens
//! still exceed every token the old master gave (clocks kept in step, as NTP does, to within
//! the failover's duration). The same holds after a restart that lost the counter.

use redis::Script;

/// KEYS: lock, shared fencing counter, token, the key's counter from earlier versions.
/// ARGV: owner, ttl ms. Returns the fencing token, or 0 when held.
///
/// Redis before 5 replicates a script by running it again on the replicas, which a script
/// reading `TIME` must not be; `replicate_commands` has it replicate the writes instead (the
/// default from Redis 5, the only way from 7).
pub(crate) fn acquire() -> Script {
    Script::new(
        r"
        if redis.replicate_commands then redis.replicate_commands() end
        if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
          return 0
        end
        local legacy = redis.call('GET', KEYS[4])
        if legacy then
          if tonumber(legacy) > (tonumber(redis.call('GET', KEYS[2])) or 0) then
            redis.call('SET', KEYS[2], legacy)
          end
          redis.call('DEL', KEYS[4])
        end
        local token = redis.call('INCR', KEYS[2])
        local now = redis.call('TIME')
        local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
        if token < floor then
          token = floor
          redis.call('SET', KEYS[2], string.format('%.0f', token))
        end
        redis.call('SET', KEYS[3], ARGV[1] .. '|' .. string.format('%.0f', token), 'PX', ARGV[2])
        return token
        ",
    )
}

/// daprd's release, with the same answers: -1 not held, -2 held by another, >= 0 released.
/// KEYS: lock, token. ARGV: owner, channel.
pub(crate) fn unlock() -> Script {
    Script::new(
        r"
        local holder = redis.call('GET', KEYS[1])
        if not holder then return -1 end
        if holder ~= ARGV[1] then return -2 end
        redis.call('DEL', KEYS[2])
        local deleted = redis.call('DEL', KEYS[1])
        redis.call('PUBLISH', ARGV[2], '')
        return deleted
        ",
    )
}

/// Releases one grant, a grant whose replicas did not confirm it: only while the lock is still
/// the owner's under that grant's token, never a later grant of the same owner.
/// KEYS: lock, token. ARGV: owner, `<owner>|<token>`, channel. Returns 1 when released.
pub(crate) fn release_grant() -> Script {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then
          return 0
        end
        redis.call('DEL', KEYS[2], KEYS[1])
        redis.call('PUBLISH', ARGV[3], '')
        return 1
        ",
    )
}

/// KEYS: lock, token. ARGV: owner, ttl ms. Answers as unlock: -1, -2, or 1 renewed.
pub(crate) fn renew() -> Script {
    Script::new(
        r"
        local holder = redis.call('GET', KEYS[1])
        if not holder then return -1 end
        if holder ~= ARGV[1] then return -2 end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        return 1
        ",
    )
}

/// KEYS: lock, token. Returns false when free, else {owner, pttl ms, token record or ''}.
pub(crate) fn inspect() -> Script {
    Script::new(
        r"
        local holder = redis.call('GET', KEYS[1])
        if not holder then return false end
        return {holder, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]) or ''}
        ",
    )
}

/// KEYS: lock, token. ARGV: channel. Returns 1 when something was held.
pub(crate) fn force_release() -> Script {
    Script::new(
        r"
        redis.call('DEL', KEYS[2])
        local deleted = redis.call('DEL', KEYS[1])
        if deleted > 0 then redis.call('PUBLISH', ARGV[1], '') end
        return deleted
        ",
    )
}
