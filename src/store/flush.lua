-- Fenced flush of one partition's dirty symbols, their operator outputs,
-- and (while someone watches the partition) one live-update message.
-- KEYS[1] = {ns}:{p<p>}:lease:{p}, KEYS[2] = {ns}:{p<p>}:psyms:{p},
-- KEYS[3] = {ns}:{p<p>}:watched, KEYS[3+i] = symbol i's state hash
-- (i = 1..n), then every output stream, in the order of ARGV below.
-- ARGV[1] = expected lease value "{instance}:{epoch}", ARGV[2] = epoch,
-- ARGV[3] = partition, ARGV[4] = symbol count n, ARGV[5] = updated_ns,
-- ARGV[6] = output stream max length, ARGV[7] = live channel,
-- then per symbol: name, last_seq, field count F, F field/value pairs,
-- stream count S, and per stream: operator, entry count E, and per entry:
-- id, field count G, G field/value pairs.
-- Returns {n} when written, {-1} when the lease is not ours, {-2, i} when
-- symbol i already carries a newer fence, {-3, j} when KEYS[j], an output
-- stream, holds another type. Nothing is written unless all pass. A symbol
-- whose stored state is newer at the same epoch (a stale retry) is left
-- alone.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {-1}
end
local epoch = tonumber(ARGV[2])
local n = tonumber(ARGV[4])
local prev_seq = {}
local same_epoch = {}
for i = 1, n do
  local got = redis.call('HMGET', KEYS[3 + i], 'fence', 'last_seq')
  local fence = tonumber(got[1])
  if fence and fence > epoch then
    return {-2, i}
  end
  prev_seq[i] = tonumber(got[2]) or 0
  same_epoch[i] = fence == epoch
end
for j = 4 + n, #KEYS do
  local t = redis.call('TYPE', KEYS[j])['ok']
  if t ~= 'stream' and t ~= 'none' then
    return {-3, j}
  end
end
local watched = redis.call('EXISTS', KEYS[3]) == 1
local updates = {}
local a = 8
local k = 3 + n
local written = 0
for i = 1, n do
  local name = ARGV[a]
  local last_seq = tonumber(ARGV[a + 1])
  local nf = tonumber(ARGV[a + 2])
  a = a + 3
  local stale = same_epoch[i] and prev_seq[i] > last_seq
  local state = {}
  if not stale then
    -- In batches, so no call unpacks more values than Lua allows.
    local hset = {'HSET', KEYS[3 + i], 'fence', ARGV[2], 'partition', ARGV[3], 'updated_ns', ARGV[5]}
    for j = 0, nf - 1 do
      hset[#hset + 1] = ARGV[a + 2 * j]
      hset[#hset + 1] = ARGV[a + 2 * j + 1]
      if #hset >= 1000 then
        redis.call(unpack(hset))
        hset = {'HSET', KEYS[3 + i]}
      end
    end
    if #hset > 2 then
      redis.call(unpack(hset))
    end
    redis.call('SADD', KEYS[2], name)
    written = written + 1
    if watched then
      for j = 0, nf - 1 do
        state[ARGV[a + 2 * j]] = ARGV[a + 2 * j + 1]
      end
    end
  end
  a = a + 2 * nf
  local ns = tonumber(ARGV[a])
  a = a + 1
  local outputs = {}
  for _ = 1, ns do
    k = k + 1
    local op = ARGV[a]
    local ne = tonumber(ARGV[a + 1])
    a = a + 2
    for _ = 1, ne do
      local id = ARGV[a]
      local ng = tonumber(ARGV[a + 1])
      a = a + 2
      if not stale then
        -- The id derives from the tick's seq: an entry sent again (a
        -- retried chunk) is not above the stream's last id and is refused,
        -- so every entry is appended exactly once.
        local xadd = {'XADD', KEYS[k], 'MAXLEN', '~', ARGV[6], id}
        local fields = {}
        for j = 0, ng - 1 do
          xadd[#xadd + 1] = ARGV[a + 2 * j]
          xadd[#xadd + 1] = ARGV[a + 2 * j + 1]
          fields[ARGV[a + 2 * j]] = ARGV[a + 2 * j + 1]
        end
        local added = redis.pcall(unpack(xadd))
        if watched and type(added) == 'string' then
          outputs[#outputs + 1] = {operator = op, id = id, fields = fields}
        end
      end
      a = a + 2 * ng
    end
  end
  if watched and not stale and last_seq > prev_seq[i] then
    local update = {symbol = name, from_seq = prev_seq[i] + 1, last_seq = last_seq, state = state}
    if #outputs > 0 then
      update.outputs = outputs
    end
    updates[#updates + 1] = update
  end
end
if #updates > 0 then
  redis.call('PUBLISH', ARGV[7], cjson.encode({partition = tonumber(ARGV[3]), epoch = epoch, updates = updates}))
end
return {written}
