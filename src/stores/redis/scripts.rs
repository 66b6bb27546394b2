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
//! A shared, limited or reentrant lock keeps its holders as a `holders::Record` in the lock key
//! itself (see `records.rs`), so daprd's `SET NX` finds such a key held too. The owner-checked
//! scripts of the plain lock leave a record alone and answer it with the server's clock
//! instead, so the caller goes on to change it without another read.
//!
//! A token is never below the server's clock in microseconds (`TIME`): the counter is lifted
//! to it before counting on. A replica promoted after its master died may lack the master's
//! last increments, but its clock has moved on by the time of the failover, so its tokens
//! still exceed every token the old master gave (clocks kept in step, as NTP does, to within
//! the failover's duration). The same holds after a restart that lost the counter.

use redis::Script;

use crate::lock::holders::MARK;

/// Lua: `draw(counter, legacy)` advances a shared fencing counter and answers the token, never
/// below the server's clock in microseconds, after lifting the counter to an earlier version's
/// per-key counter (`legacy`), which it then deletes.
const DRAW: &str = r"
local function draw(counter, legacy_key)
  local legacy = redis.call('GET', legacy_key)
  if legacy then
    if tonumber(legacy) > (tonumber(redis.call('GET', counter)) or 0) then
      redis.call('SET', counter, legacy)
    end
    redis.call('DEL', legacy_key)
  end
  local token = redis.call('INCR', counter)
  local now = redis.call('TIME')
  local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
  if token < floor then
    token = floor
    redis.call('SET', counter, string.format('%.0f', token))
  end
  return token
end
";

/// Lua: `now_ms()`, the server's clock in milliseconds, the clock of a record's deadlines.
pub(super) const NOW_MS: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
";

/// Lua shared by the scripts that read or change a waiters' line (`line.rs`). KEYS of a line: the arrival order and
/// the leases.
pub(super) const LINE: &str = r"
local function purge_line(line, leases, now)
  local gone = redis.call('ZRANGEBYSCORE', leases, '-inf', string.format('%.0f', now))
  if #gone > 0 then
    redis.call('ZREM', leases, unpack(gone))
    redis.call('ZREM', line, unpack(gone))
  end
end
local function anyone_waits(leases, now)
  return redis.call('ZCOUNT', leases, '(' .. string.format('%.0f', now), '+inf') > 0
end
local function first_in(line)
  return redis.call('ZRANGE', line, 0, 0)[1]
end
local function wake_first(line, turn_prefix)
  local first = first_in(line)
  if first then redis.call('PUBLISH', turn_prefix .. first, '') end
  return first
end
local function announce(line, turn_prefix, channel)
  if not wake_first(line, turn_prefix) then redis.call('PUBLISH', channel, '') end
end
local function renew_lease(line, leases, waiter, now, lease_ms)
  redis.call('ZADD', leases, string.format('%.0f', now + lease_ms), waiter)
  redis.call('PEXPIRE', line, lease_ms)
  redis.call('PEXPIRE', leases, lease_ms)
end
local function turn(line, leases, waiter, now, lease_ms)
  purge_line(line, leases, now)
  if not redis.call('ZSCORE', leases, waiter) then return -1 end
  renew_lease(line, leases, waiter, now, lease_ms)
  if first_in(line) == waiter then return 1 end
  return 0
end
local function leave_line(line, leases, waiter)
  redis.call('ZREM', line, waiter)
  redis.call('ZREM', leases, waiter)
end
";

/// Lua: `is_record(value)`, whether a lock key's value is a holders record rather than an owner.
fn is_record() -> String {
    format!(
        r"
local function is_record(value)
  return string.sub(value, 1, {len}) == '{MARK}'
end
",
        len = MARK.len()
    )
}

/// Lua that an owner-checked script starts with: when the lock key holds a record, it answers
/// `{now ms, record}` untouched.
fn answer_a_record() -> String {
    format!(
        r"{NOW_MS}{LINE}{is_record}
local holder = redis.call('GET', KEYS[1])
if holder and is_record(holder) then return {{now_ms(), holder}} end
",
        is_record = is_record()
    )
}

/// KEYS: lock, shared fencing counter, token, the key's counter from earlier versions, the
/// line, its leases (`line.rs`). ARGV: owner, ttl ms, the turn ('-' for a try, else the
/// waiter), a waiter's lease ms. Returns the fencing token, 0 when held (or, to a try, while
/// others wait), -1 when the waiter is no longer in line, -2 when others wait ahead of it.
///
/// Redis before 5 replicates a script by running it again on the replicas, which a script
/// reading `TIME` must not be; `replicate_commands` has it replicate the writes instead (the
/// default from Redis 5, the only way from 7).
pub(crate) fn acquire() -> Script {
    Script::new(&format!(
        r"
        if redis.replicate_commands then redis.replicate_commands() end
        {DRAW}{NOW_MS}{LINE}
        if ARGV[3] == '-' then
          if anyone_waits(KEYS[6], now_ms()) then return 0 end
        else
          local stands = turn(KEYS[5], KEYS[6], ARGV[3], now_ms(), tonumber(ARGV[4]))
          if stands == 0 then return -2 end
          if stands ~= 1 then return stands end
        end
        if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
          return 0
        end
        local token = draw(KEYS[2], KEYS[4])
        redis.call('SET', KEYS[3], ARGV[1] .. '|' .. string.format('%.0f', token), 'PX', ARGV[2])
        if ARGV[3] ~= '-' then leave_line(KEYS[5], KEYS[6], ARGV[3]) end
        return token
        ",
    ))
}

/// daprd's release, with the same answers: -1 not held, -2 held by another, >= 0 released; a
/// record is answered as `{now ms, record}`. A release wakes the line's first waiter, or
/// whoever listens on the lock's channel when nobody waits in the line. KEYS: lock, token,
/// line. ARGV: owner, channel, turn prefix.
pub(crate) fn unlock() -> Script {
    Script::new(&format!(
        r"
        {record}
        if not holder then return -1 end
        if holder ~= ARGV[1] then return -2 end
        redis.call('DEL', KEYS[2])
        local deleted = redis.call('DEL', KEYS[1])
        announce(KEYS[3], ARGV[3], ARGV[2])
        return deleted
        ",
        record = answer_a_record()
    ))
}

/// Releases one grant, a grant whose replicas did not confirm it or whose caller had gone:
/// only while the lock is still the owner's under that grant's token, never a later grant of
/// the same owner. KEYS: lock, token, line. ARGV: owner, `<owner>|<token>`, channel, turn
/// prefix. Returns 1 when released, 0 when not; a record as `{now ms, record}`.
pub(crate) fn release_grant() -> Script {
    Script::new(&format!(
        r"
        {record}
        if holder ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then
          return 0
        end
        redis.call('DEL', KEYS[2], KEYS[1])
        announce(KEYS[3], ARGV[4], ARGV[3])
        return 1
        ",
        record = answer_a_record()
    ))
}

/// KEYS: lock, token. ARGV: owner, ttl ms. Answers as unlock: -1, -2, or 1 renewed; a record
/// as `{now ms, record}`.
pub(crate) fn renew() -> Script {
    Script::new(&format!(
        r"
        {record}
        if not holder then return -1 end
        if holder ~= ARGV[1] then return -2 end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        return 1
        ",
        record = answer_a_record()
    ))
}

/// A look at a lock in one step. KEYS: lock, token. Returns {now ms, the lock key's value or
/// nil, its pttl, the token record or nil}.
pub(crate) fn look() -> Script {
    Script::new(&format!(
        r"
        {NOW_MS}
        return {{now_ms(), redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]),
          redis.call('GET', KEYS[2])}}
        ",
    ))
}

/// The compare-and-set of a record: writes the lock key's new value only if it still holds
/// what the caller read (and, when given, the token record too), with the expiry at the new
/// value's deadline by the server's clock, or deletes the key when that is past; with `draw`,
/// first draws a token from the key's counter and writes it between the value's two halves.
/// The token record, of no use beside a record, goes. A turn, when given, is checked as the
/// plain grant checks it, and a waiter granted leaves the line. KEYS: as acquire's. ARGV: '1'
/// when the key was read holding a value, else '0'; that value; the token record read, or ''
/// to not look; the new value (its part before the token when drawing); its part after the
/// token; '1' to draw; the deadline ms; a channel to publish a release on, or ''; the turn
/// ('' none, '-' a try, else the waiter); a waiter's lease ms; the turn prefix; '1' to wake
/// the next waiter after the grant. Returns -1 when the key changed since it was read, -2 when
/// the turn is not the caller's, else the token drawn, 0 when none.
pub(crate) fn swap() -> Script {
    Script::new(&format!(
        r"
        if redis.replicate_commands then redis.replicate_commands() end
        {DRAW}{NOW_MS}{LINE}
        local current = redis.call('GET', KEYS[1])
        if ARGV[1] == '1' then
          if current ~= ARGV[2] then return -1 end
          if ARGV[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[3] then return -1 end
        elseif current then
          return -1
        end
        if ARGV[9] == '-' then
          if anyone_waits(KEYS[6], now_ms()) then return -2 end
        elseif ARGV[9] ~= '' then
          if turn(KEYS[5], KEYS[6], ARGV[9], now_ms(), tonumber(ARGV[10])) ~= 1 then return -2 end
          leave_line(KEYS[5], KEYS[6], ARGV[9])
        end
        local token = 0
        local value = ARGV[4]
        if ARGV[6] == '1' then
          token = draw(KEYS[2], KEYS[4])
          value = value .. string.format('%.0f', token) .. ARGV[5]
        end
        redis.call('DEL', KEYS[3])
        local left = tonumber(ARGV[7]) - now_ms()
        if left > 0 then
          redis.call('SET', KEYS[1], value, 'PX', string.format('%.0f', left))
        else
          redis.call('DEL', KEYS[1])
        end
        if ARGV[8] ~= '' then
          announce(KEYS[5], ARGV[11], ARGV[8])
        elseif ARGV[12] == '1' then
          wake_first(KEYS[5], ARGV[11])
        end
        return token
        ",
    ))
}

/// The compare-and-set of several records at once (a multi-lock's, `multi.rs`): `swap` for
/// each key, but nothing written unless every key still holds what was read. KEYS: swap's four
/// and the key's line for each key in turn. ARGV: the number of keys, then swap's eight and
/// the line's turn prefix for each key in turn. A key released wakes its line's first waiter,
/// or else publishes on its channel, as a release of that key alone does. Returns {-1} when
/// any key changed since it was read, else the token drawn for each key (0 where none).
pub(crate) fn swap_many() -> Script {
    Script::new(&format!(
        r"
        if redis.replicate_commands then redis.replicate_commands() end
        {DRAW}{NOW_MS}{LINE}
        local n = tonumber(ARGV[1])
        for i = 0, n - 1 do
          local k, a = i * 5, 1 + i * 9
          local current = redis.call('GET', KEYS[k + 1])
          if ARGV[a + 1] == '1' then
            if current ~= ARGV[a + 2] then return {{-1}} end
            if ARGV[a + 3] ~= '' and redis.call('GET', KEYS[k + 3]) ~= ARGV[a + 3] then
              return {{-1}}
            end
          elseif current then
            return {{-1}}
          end
        end
        local tokens = {{}}
        for i = 0, n - 1 do
          local k, a = i * 5, 1 + i * 9
          local token = 0
          local value = ARGV[a + 4]
          if ARGV[a + 6] == '1' then
            token = draw(KEYS[k + 2], KEYS[k + 4])
            value = value .. string.format('%.0f', token) .. ARGV[a + 5]
          end
          redis.call('DEL', KEYS[k + 3])
          local left = tonumber(ARGV[a + 7]) - now_ms()
          if left > 0 then
            redis.call('SET', KEYS[k + 1], value, 'PX', string.format('%.0f', left))
          else
            redis.call('DEL', KEYS[k + 1])
          end
          if ARGV[a + 8] ~= '' then announce(KEYS[k + 5], ARGV[a + 9], ARGV[a + 8]) end
          tokens[i + 1] = token
        end
        return tokens
        ",
    ))
}

/// KEYS: lock, token, line. ARGV: channel, turn prefix. Returns 1 when something was held.
pub(crate) fn force_release() -> Script {
    Script::new(&format!(
        r"
        {LINE}
        redis.call('DEL', KEYS[2])
        local deleted = redis.call('DEL', KEYS[1])
        if deleted > 0 then announce(KEYS[3], ARGV[2], ARGV[1]) end
        return deleted
        ",
    ))
}
