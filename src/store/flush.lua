-- Fenced flush of one partition's dirty symbols.
-- KEYS[1] = {ns}:{p<p>}:lease:{p}, KEYS[2] = {ns}:{p<p>}:psyms:{p},
-- then per symbol i: KEYS[1+2i] = {ns}:{p<p>}:sym:{S}, KEYS[2+2i] = {ns}:{p<p>}:bars:{S}
-- ARGV[1] = expected lease value "{instance}:{epoch}", ARGV[2] = epoch,
-- ARGV[3] = partition, ARGV[4] = symbol count, ARGV[5] = updated_ns,
-- ARGV[6] = bars stream max length,
-- then per symbol: name, field count F, F field/value pairs, bar count B,
-- B bars of 8 values (id, start_ns, open, high, low, close, volume, count).
-- Returns {n} when written, {-1} when the lease is not ours, {-2, i} when
-- symbol i already carries a newer fence. Nothing is written unless all pass.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {-1}
end
local epoch = tonumber(ARGV[2])
local n = tonumber(ARGV[4])
for i = 1, n do
  local fence = redis.call('HGET', KEYS[1 + 2 * i], 'fence')
  if fence and tonumber(fence) > epoch then
    return {-2, i}
  end
end
local a = 7
for i = 1, n do
  local sym = KEYS[1 + 2 * i]
  local bars = KEYS[2 + 2 * i]
  local name = ARGV[a]
  local nf = tonumber(ARGV[a + 1])
  a = a + 2
  local hset = {'HSET', sym, 'fence', ARGV[2], 'partition', ARGV[3], 'updated_ns', ARGV[5]}
  for j = 0, 2 * nf - 1 do
    hset[#hset + 1] = ARGV[a + j]
  end
  a = a + 2 * nf
  redis.call(unpack(hset))
  redis.call('SADD', KEYS[2], name)
  local nb = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, nb do
    -- An explicit id per bar start makes a re-sent bar a no-op (the id is
    -- not greater than the last one), so bars are appended exactly once.
    redis.pcall('XADD', bars, 'MAXLEN', '~', ARGV[6], ARGV[a],
      'start_ns', ARGV[a + 1], 'open', ARGV[a + 2], 'high', ARGV[a + 3],
      'low', ARGV[a + 4], 'close', ARGV[a + 5], 'volume', ARGV[a + 6],
      'count', ARGV[a + 7])
    a = a + 8
  end
end
return {n}
